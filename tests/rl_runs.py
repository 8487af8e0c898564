"""Short GRPO runs in the test session's Ray cluster, shared by the resume, fault and metrics tests.

`baseline` (an uninterrupted run) is computed once per session and compared with runs that were interrupted, had
actors killed, or were resumed: with sampling seeds fixed by (seed, step) they must log the same numbers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import ray

from tests.conftest import locked, tiny_config

STEPS = 4
# a decaying LR, so a resumed run that restored the schedule wrongly shows it in the losses
RUN = [f"run.steps={STEPS}", "checkpoint.every=2", "checkpoint.keep_last=2", "learner.lr=3e-3",
       "learner.lr_schedule=linear", "rollout.max_new_tokens=4", "logging.progress_bar=false"]
COMPARED = ("reward/mean", "learner/pg_loss", "learner/entropy", "learner/clip_fraction", "learner/grad_norm",
            "learner/lr", "response/length_mean")

_baseline: dict[str, list[dict]] = {}


def config(model_dir: str, out: Path, *extra: str):
    return tiny_config(model_dir, out, *RUN, *extra)


def run(cfg, on_step=None) -> dict[str, float]:
    from rlvr.launch.grpo_job import run_grpo_job

    return run_grpo_job(cfg, on_step=on_step)


def copy_after_checkpoint(src: Path, dst: Path, step: int = 2):
    """An on_step callback copying the run directory `src` to `dst` right after the checkpoint at `step` steps: what
    a run stopped there leaves (stopping writes nothing more without a refreshing sampler), so resuming the copy
    tests resume without a run of its own, most of whose time is actor start-up. test_resume.py and
    test_preempt.py stop runs for real. Step index `step` is redone after resuming."""
    def on_step(done: int) -> None:
        if done == step:
            shutil.copytree(src, dst)

    return on_step


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def baseline(model_dir: str) -> list[dict]:
    """Metrics of an uninterrupted run (TensorBoard on, so the metrics test can read its event files). Made once per
    model directory, next to it: tiny_model_dir is one for all pytest-xdist workers, so one worker runs it and the
    others wait for it and read it. `baseline.done` marks a finished run (a worker that died mid-run leaves none)."""
    if model_dir not in _baseline:
        out = Path(model_dir).parent / "baseline"  # shared by several tests, so no one test's tmp_path owns it
        with locked(out.with_suffix(".lock")):
            done = out.with_suffix(".done")
            if not done.exists():
                shutil.rmtree(out, ignore_errors=True)
                run(config(model_dir, out, "logging.tensorboard=true"))
                done.touch()
        _baseline[model_dir] = rows(out)
        _baseline[model_dir + ":dir"] = str(out)
    return _baseline[model_dir]


def baseline_dir(model_dir: str) -> Path:
    baseline(model_dir)
    return Path(_baseline[model_dir + ":dir"])


def actor(suffix: str):
    """The live actor of the current run whose name ends with `suffix` (e.g. `/learner-1`)."""
    names = [n for n in ray.util.list_named_actors() if n.endswith(suffix)]
    assert len(names) == 1, f"expected one actor named *{suffix}, found {names}"
    return ray.get_actor(names[0])


def assert_same_metrics(got: list[dict], want: list[dict], rel: float = 1e-4, atol: float = 1e-6) -> None:
    assert [r["step"] for r in got] == [r["step"] for r in want], "steps lost or logged twice"
    for g, w in zip(got, want):
        for key in COMPARED:
            assert abs(g[key] - w[key]) <= rel * abs(w[key]) + atol, (
                f"step {g['step']} {key}: {g[key]!r} != uninterrupted {w[key]!r}")
