"""`ray job submit --working-dir . -- rlvr train CONFIG` against a head started with `ray start --head`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ray_head import VENV_BIN, ray_head

REPO = Path(__file__).resolve().parent.parent
# starts Ray clusters: one pytest-xdist worker runs all such files (tests/conftest.py)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cluster")]


def test_job_submit_runs_to_success(tmp_path):
    out = tmp_path / "run"
    # Ray 2.60 turns token auth on for `ray start --head`; the CLI client must be told to send the token.
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_ADDRESS": ""}
    with ray_head() as head:
        cmd = [str(VENV_BIN / "ray"), "job", "submit", f"--address={head.dashboard}", "--working-dir", str(REPO),
               "--", sys.executable, "-m", "rlvr", "train", "configs/tiny.yaml",
               "--set", "run.steps=3", "--set", f"run.output_dir={out}",
               # one actor per role: the submission is under test, not the preset's actor count
               "--set", "rollout.num_actors=1", "--set", "learner.num_actors=1"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "succeeded" in proc.stdout
    assert "[rlvr] step 3/3" in proc.stdout  # the job's logs follow the submission
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 3
