"""Metrics reach every sink: Ray's Prometheus export of a head (from a job submitted with `rlvr submit`), the
TensorBoard event files, W&B offline, and the driver's progress bar."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from rlvr.config import load_config
from rlvr.trainer.metrics import MetricsLogger, prometheus_name
from tests import rl_runs
from tests.ray_head import ray_head

REPO = Path(__file__).resolve().parent.parent
# starts Ray clusters: one pytest-xdist worker runs all such files (tests/conftest.py)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cluster")]

EXPORTED = ("reward/mean", "reward/verdict_correct", "learner/pg_loss", "learner/entropy", "learner/clip_fraction",
            "response/length_mean", "time/rollout_s", "time/reward_s", "time/learn_s", "time/weight_sync_s",
            "throughput/tokens_per_s")


@pytest.fixture
def metrics_head():
    """A head with a metrics export port; Ray's metrics are flushed every second instead of every ten."""
    with ray_head(env={"RAY_metrics_report_interval_ms": "1000"}) as head:
        yield head.dashboard, head.metrics_url


def scrape_until(url: str, names: list[str], proc: subprocess.Popen, deadline_s: float) -> str:
    """Poll the Prometheus endpoint until every name has a sample for our run (or the job ends, or time runs out)."""
    end, text = time.monotonic() + deadline_s, ""
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                text = resp.read().decode()
        except OSError:  # the node's metrics agent starts a little after the head answers
            text = ""
        if all(re.search(rf'^ray_{n}{{[^}}]*run="metricsrun"', text, re.M) for n in names):
            return text
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    return text


def test_submitted_job_exports_rl_metrics_to_prometheus(metrics_head, tmp_path):
    dashboard, metrics_url = metrics_head
    out = tmp_path / "run"
    env = {**os.environ, "RAY_ADDRESS": ""}
    # one actor per role: what is exported is the driver's metrics, whatever the actor count; 5 steps keep the
    # driver alive for several of the 1 s metric flushes after its first step
    sets = ["run.name=metricsrun", "run.steps=5", f"run.output_dir={out}", "rollout.num_actors=1",
            "learner.num_actors=1"]
    cmd = [sys.executable, "-m", "rlvr", "submit", "configs/tiny.yaml", "--address", dashboard,
           "--python", sys.executable, *(a for s in sets for a in ("--set", s))]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    names = [prometheus_name(k) for k in ("step", *EXPORTED)]
    try:
        text = scrape_until(metrics_url, names, proc, deadline_s=300)
        stdout, _ = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, stdout[-3000:]
    missing = [n for n in names if f"ray_{n}{{" not in text]
    assert not missing, f"not exported: {missing}"
    assert "[rlvr] submitted" in stdout and "[rlvr] step 5/5" in stdout and "SUCCEEDED" in stdout


def test_tensorboard_event_files_hold_the_run(ray_cluster, tiny_model_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    want = rl_runs.baseline(tiny_model_dir)
    events = EventAccumulator(str(rl_runs.baseline_dir(tiny_model_dir) / "tensorboard"))
    events.Reload()
    for key in ("reward/mean", "learner/pg_loss", "learner/entropy"):
        scalars = events.Scalars(key)
        assert [e.step for e in scalars] == [r["step"] for r in want], key
        assert [e.value for e in scalars] == pytest.approx([r[key] for r in want], rel=1e-6), key


def test_wandb_offline_and_progress_bar(tmp_path, monkeypatch, capsys):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")  # no network here; also what a user without a W&B key gets
    cfg = load_config(REPO / "configs" / "tiny.yaml", ["logging.wandb=true", "run.steps=3",
                                                       f"run.output_dir={tmp_path}"])
    logger = MetricsLogger(cfg, tmp_path)
    for step in range(3):
        logger.log(step, {"reward/mean": 0.25 * step})
    logger.close()
    runs = list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1 and runs[0].stat().st_size > 0
    err = capsys.readouterr().err
    assert re.search(r"3/3 \[\d+:\d+<\d+:\d+", err) and "reward=0.500" in err  # the bar: elapsed<ETA
