"""Preemption: SIGTERM to the driver (what `ray job stop` and a spot reclaim send) makes a GRPO run save a checkpoint
at the next step boundary and stop; resumed, it logs exactly what an uninterrupted run logs. A damaged newest
checkpoint is skipped on resume and the run still ends equal to the uninterrupted one. (tests/test_chaos.py resumes
from the SIGTERM checkpoint itself, through `rlvr train`.)"""

from __future__ import annotations

import os
import signal

import pytest

from rlvr.trainer.checkpoint import CheckpointDir
from rlvr.trainer.preempt import Preempted
from tests import rl_runs

pytestmark = pytest.mark.slow


def test_sigterm_checkpoints_at_step_boundary_and_resume_skips_a_damaged_checkpoint(ray_cluster, tiny_model_dir,
                                                                                      tmp_path, capsys):
    """SIGTERM after step index 2 saves step_000003 (checkpoint.every=2 would not); its model file is then cut short
    (a full disk): resume names it, falls back to step_000002, and the redone steps equal the uninterrupted run's.
    Before manifests this was a 75-line Ray traceback."""
    want = rl_runs.baseline(tiny_model_dir)
    default = signal.getsignal(signal.SIGTERM)

    def preempt(step: int) -> None:
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(Preempted, match="stopped by SIGTERM after step 3.*checkpoint.resume=true") as stopped:
        rl_runs.run(rl_runs.config(tiny_model_dir, tmp_path), on_step=preempt)
    assert stopped.value.step == 3
    assert [r["step"] for r in rl_runs.rows(tmp_path)] == [0, 1, 2]  # stopped at the boundary, no step after it
    ckpts = CheckpointDir(tmp_path, 2)
    assert [p.name for p in ckpts.complete()] == ["step_000002", "step_000003"]
    assert signal.getsignal(signal.SIGTERM) is default  # the handler lives only as long as the run
    assert "SIGTERM: saving a checkpoint" in capsys.readouterr().out

    states = sorted((ckpts.root / "step_000003" / "state").glob("*model_states.pt"))
    assert states, list((ckpts.root / "step_000003").rglob("*"))
    with states[0].open("r+b") as f:
        f.truncate(states[0].stat().st_size // 2)
    rl_runs.run(rl_runs.config(tiny_model_dir, tmp_path, "checkpoint.resume=true"))
    out = capsys.readouterr().out
    assert "step_000003 is damaged (state/" in out and "falling back" in out, out[-3000:]
    assert "step_000002 at step 2" in out
    rl_runs.assert_same_metrics(rl_runs.rows(tmp_path), want)
