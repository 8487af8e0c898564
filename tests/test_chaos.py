"""Chaos: a 60-step GRPO run through `rlvr train` during which, at random steps, a rollout actor and a reward worker
are killed (mid-step, from another thread) and the driver gets SIGTERM (a preemption; `rlvr train` exits 0 after a
checkpoint), then `rlvr train --resume` finishes it. Every step is logged once and equals an undisturbed run's.

RLVR_CHAOS_SEED picks other steps (default 12). The figures (kills survived, steps lost, wall time) are printed on
one line: `pytest tests/test_chaos.py -s` shows it; docs/benchmarks.md quotes it."""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest
import ray
import yaml

from rlvr.cli import main as rlvr_main
from tests import rl_runs
from tests.conftest import tiny_config

# starts Ray clusters: one pytest-xdist worker runs all such files (tests/conftest.py)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cluster")]

STEPS = 60
# as small as a GRPO step gets: one actor per role, 2 prompts x 2 samples of 4 tokens; no periodic checkpoint, so
# the only one is the SIGTERM's
CHAOS = [f"run.steps={STEPS}", "rollout.num_actors=1", "learner.num_actors=1", "rewards.num_workers=1",
         "data.prompts_per_step=2", "rollout.samples_per_prompt=2", "rollout.max_new_tokens=4",
         "learner.micro_batch_size=4", "learner.lr=3e-3", "learner.lr_schedule=linear", "checkpoint.every=0",
         "checkpoint.save_final=false", "logging.progress_bar=false", "logging.log_every=20"]


def write_config(model_dir: str, out: Path) -> Path:
    path = out.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(tiny_config(model_dir, out, *CHAOS).model_dump(mode="json")))
    return path


def logged_steps(out: Path) -> int:
    try:
        return len((out / "metrics.jsonl").read_text().splitlines())
    except FileNotFoundError:
        return 0


def live_actor(marker: str):
    for name in ray.util.list_named_actors():
        if marker in name:
            try:
                return ray.get_actor(name)
            except ValueError:  # died between the listing and the lookup
                continue
    return None


class Chaos(threading.Thread):
    """Acts when metrics.jsonl reaches a planned number of steps: kills the named actor, or SIGTERMs the driver."""

    def __init__(self, out: Path, plan: dict[int, str]):
        super().__init__(daemon=True)
        self.out, self.plan, self.done = out, dict(sorted(plan.items())), []
        self.stop = threading.Event()

    def run(self) -> None:
        for at, what in self.plan.items():
            while logged_steps(self.out) < at:
                if self.stop.wait(0.02):  # polls the log; set when the run ended
                    return
            if what == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                actor = live_actor(what)
                assert actor is not None, (what, ray.util.list_named_actors())
                ray.kill(actor)
            self.done.append((logged_steps(self.out), what))


def test_chaos_kills_and_preemption_lose_no_step(ray_cluster, tiny_model_dir, tmp_path, capsys, caplog):
    calm, wild = tmp_path / "calm", tmp_path / "wild"
    t0 = time.perf_counter()
    assert rlvr_main(["train", str(write_config(tiny_model_dir, calm))]) == 0
    calm_wall = time.perf_counter() - t0
    want = rl_runs.rows(calm)

    rng = random.Random(int(os.environ.get("RLVR_CHAOS_SEED", "12")))
    kill_rollout, kill_reward, preempt = rng.sample(range(3, STEPS - 3), 3)
    chaos = Chaos(wild, {kill_rollout: "/rollout-0", kill_reward: "/reward-0", preempt: "sigterm"})
    config = str(write_config(tiny_model_dir, wild))
    t0 = time.perf_counter()
    chaos.start()
    with caplog.at_level(logging.WARNING):
        try:
            assert rlvr_main(["train", config]) == 0  # stopped by SIGTERM: exit 0
            stopped_at = logged_steps(wild)
            out = capsys.readouterr().out
            assert f"stopped by SIGTERM after step {stopped_at}" in out and "checkpoint.resume=true" in out, out
            assert stopped_at < STEPS
            assert rlvr_main(["train", config, "--resume"]) == 0
        finally:
            chaos.stop.set()
            chaos.join()
    wall = time.perf_counter() - t0
    out = capsys.readouterr().out
    assert f"at step {stopped_at}" in out  # resumed from the SIGTERM checkpoint

    assert sorted(w for _, w in chaos.done) == sorted(["/rollout-0", "/reward-0", "sigterm"]), chaos.done
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("rollout worker 0 died" in w for w in warnings), warnings
    assert any("reward worker 0 died" in w for w in warnings), warnings
    got = rl_runs.rows(wild)
    rl_runs.assert_same_metrics(got, want)  # every step once (steps lost: 0), same numbers
    with capsys.disabled():
        print(f"\n[chaos] {STEPS} steps; rollout actor killed at step {kill_rollout}, reward worker at step "
              f"{kill_reward}, SIGTERM at step {preempt} (stopped after step {stopped_at}, resumed); kills survived 2, "
              f"steps lost {STEPS - len({r['step'] for r in got})}; wall {wall:.1f} s disturbed (2 invocations, "
              f"{sum(r['time/step_s'] for r in got):.1f} s in steps), {calm_wall:.1f} s undisturbed "
              f"({sum(r['time/step_s'] for r in want):.1f} s in steps)")
