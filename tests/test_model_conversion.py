"""The real model's GGUF is converted once into a cache that every run on the machine shares; two runs that start at
once on a fresh machine (two GRPO arms, a parallel test suite) both convert, and both must come out with it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RESOLVE = ("from rlvr.config import ModelSection\nfrom rlvr.model_io import SMOLLM2, resolve_model_path\n"
           "print(resolve_model_path(ModelSection(path=SMOLLM2), '.'))")


@pytest.mark.needs_smollm2
def test_two_processes_converting_at_once_both_get_the_model(tmp_path):
    cache = tmp_path / "cache"
    env = {**os.environ, "RLVR_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", RESOLVE], cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    paths = {out.strip().splitlines()[-1] for out, _ in outs}
    assert len(paths) == 1
    (model_dir,) = paths
    assert sorted(p.name for p in cache.iterdir()) == [Path(model_dir).name]  # the loser's copy is gone

    from transformers import AutoConfig, AutoTokenizer

    assert AutoConfig.from_pretrained(model_dir).num_hidden_layers == 30  # SmolLM2-135M
    assert AutoTokenizer.from_pretrained(model_dir)("12 + 7").input_ids
