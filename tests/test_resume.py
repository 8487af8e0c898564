"""Exact resume: a run whose learner dies mid-run stops with an error naming the rank, and resumed from its last
checkpoint, logs the same losses, rewards and LR as a run that was never interrupted; every step appears once."""

from __future__ import annotations

import pytest
import ray

from rlvr.actors.calls import ActorDied
from rlvr.utils.checkpoint import CheckpointDir
from tests import rl_runs

pytestmark = pytest.mark.slow


def test_learner_death_stops_run_and_resume_matches_uninterrupted(ray_cluster, tiny_model_dir, tmp_path):
    want = rl_runs.baseline(tiny_model_dir)

    def kill_learner(step: int) -> None:
        if step == 2:  # after the checkpoint at 2 steps: step index 2 must be redone after resuming
            ray.kill(rl_runs.actor("/learner-1"))

    with pytest.raises(ActorDied, match="learner rank 1 died"):
        rl_runs.run(rl_runs.config(tiny_model_dir, tmp_path), on_step=kill_learner)
    assert [r["step"] for r in rl_runs.rows(tmp_path)] == [0, 1, 2]
    ckpts = CheckpointDir(tmp_path, keep_last=2)
    assert [p.name for p in ckpts.complete()] == ["step_000002"]
    # a save that crashed half-way (no driver_state.json) must be ignored by resume, and cleaned up later
    half = ckpts.root / "step_000003.tmp"
    half.mkdir()
    (half / "state").mkdir()

    rl_runs.run(rl_runs.config(tiny_model_dir, tmp_path, "checkpoint.resume=true"))
    rl_runs.assert_same_metrics(rl_runs.rows(tmp_path), want)
    assert [p.name for p in ckpts.complete()] == ["step_000002", "step_000004"]
    assert not half.exists()


def test_checkpoint_dir_keeps_last_and_ignores_unfinished(tmp_path):
    ckpts = CheckpointDir(tmp_path, keep_last=2)
    for step in (1, 2, 3):
        staging = ckpts.staging(step)
        (staging / "weights").write_text(str(step))
        ckpts.commit(staging, {"step": step})
    ckpts.staging(4)  # a crash before commit: never counted
    assert [p.name for p in ckpts.complete()] == ["step_000002", "step_000003"]
    path, state = ckpts.latest()
    assert path.name == "step_000003" and state == {"step": 3}
    staging = ckpts.staging(3)  # the same step saved again by a resumed run replaces the old copy
    (staging / "weights").write_text("again")
    ckpts.commit(staging, {"step": 3})
    assert (ckpts.latest()[0] / "weights").read_text() == "again"
