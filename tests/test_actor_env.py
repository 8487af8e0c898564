"""Actors start with an environment that silences known library noise (rlvr/launch/actor_env.py) and nothing else:
the same library calls print their deprecation notices, progress bars and DeepSpeed's accelerator guess without it,
and a real warning or error still shows with it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rlvr.config import ResourceSpec
from rlvr.launch.actor_env import actor_env
from tests.conftest import tiny_config

REPO = Path(__file__).resolve().parent.parent

# what a CPU learner and rollout worker do that is noisy, then a real warning and a real error
ACTOR_WORK = r'''
import logging, warnings
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from deepspeed.accelerator import get_accelerator
from deepspeed.utils import logger as ds_logger

get_accelerator()
model = LlamaForCausalLM(LlamaConfig(vocab_size=16, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=16))
out = model(torch.tensor([[1, 2]]), use_cache=True)
model(torch.tensor([[3]]), past_key_values=out.past_key_values)  # the KV-cached step of our sampling loop
warnings.warn("a real problem", UserWarning)
ds_logger.error("a real error")
'''
NOISE = ["Setting accelerator to CPU", "`past_key_values` is deprecated", "`past_key_values`/`cache_params`"]


def run_as_actor(env: dict[str, str]) -> str:
    noise_vars = {"PYTHONWARNINGS", "DS_ACCELERATOR", "HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY"}
    base = {k: v for k, v in os.environ.items() if k not in noise_vars}
    proc = subprocess.run([sys.executable, "-c", ACTOR_WORK], capture_output=True, text=True, timeout=300,
                          env={**base, "PYTHONPATH": str(REPO), **env})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_known_noise_is_silenced_and_real_problems_still_show(monkeypatch):
    monkeypatch.delenv("RLVR_VERBOSE_ACTORS", raising=False)
    quiet = run_as_actor(actor_env(ResourceSpec(num_cpus=1)))
    for line in NOISE:
        assert line not in quiet, quiet
    assert "UserWarning: a real problem" in quiet and "a real error" in quiet
    loud = run_as_actor({})
    for line in NOISE:
        assert line in loud, loud  # the noise is real: without the environment every item shows
    monkeypatch.setenv("RLVR_VERBOSE_ACTORS", "1")
    assert actor_env(ResourceSpec(num_cpus=1)) == {}


def test_gpu_actors_keep_deepspeeds_accelerator_detection(monkeypatch):
    monkeypatch.delenv("RLVR_VERBOSE_ACTORS", raising=False)
    assert actor_env(ResourceSpec(num_cpus=1))["DS_ACCELERATOR"] == "cpu"
    assert "DS_ACCELERATOR" not in actor_env(ResourceSpec(num_gpus=1))


def test_every_actor_of_a_run_gets_the_environment(ray_cluster, tiny_model_dir, tmp_path, monkeypatch):
    from rlvr.launch.cluster import Placement

    monkeypatch.delenv("RLVR_VERBOSE_ACTORS", raising=False)
    cfg = tiny_config(tiny_model_dir, tmp_path)
    placement = Placement(cfg)
    try:
        for role, spec in [("learner", cfg.learner.resources), ("rollout", cfg.rollout.resources),
                           ("reward", cfg.rewards.resources)]:
            options = placement.scheduling(role)
            assert options and all(o["runtime_env"] == {"env_vars": actor_env(spec)} for o in options), role
    finally:
        placement.remove()


def test_the_driver_process_is_quiet_too(tmp_path, tiny_model_dir):
    """`python -m rlvr eval` samples with the KV cache in the driver's own process, as a pipeline's stage eval does."""
    data = tmp_path / "items.jsonl"
    data.write_text('{"question": "What is 2 plus 2?", "answer": "2+2=4\\n#### 4"}\n')

    def stderr(**env: str) -> str:
        base = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_DISABLE_PROGRESS_BARS",
                                                                    "TRANSFORMERS_VERBOSITY", "RLVR_VERBOSE_ACTORS")}
        proc = subprocess.run(
            [sys.executable, "-m", "rlvr", "eval", "--model", tiny_model_dir, "--data", str(data), "--limit", "1",
             "--num-fewshot", "0", "--max-new-tokens", "4", "--out", str(tmp_path / "out.jsonl")],
            capture_output=True, text=True, timeout=300, env={**base, "PYTHONPATH": str(REPO), **env})
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stderr

    quiet, loud = stderr(), stderr(RLVR_VERBOSE_ACTORS="1")  # one eval each: every line is checked in the same output
    assert not any(line in quiet for line in NOISE[1:]), quiet
    assert all(line in loud for line in NOISE[1:]), loud
