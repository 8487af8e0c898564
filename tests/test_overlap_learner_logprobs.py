"""rollout.overlap_old_logprobs=learner through the real actors (Ray, DeepSpeed on CPU, the HF engine).

The HF engine returns float32 logprobs that equal a float32 forward pass of the same weights, so a learner that
recomputes the old policy's logprobs with the right weights (those from before its last update) must train exactly
as one that reads them from the engine. A copy one update off, or none (the current weights), shows in the losses
from step 1 or 2 on. Resumed from a checkpoint, the copy must come back too.
"""

from __future__ import annotations

import pytest

from tests import rl_runs

pytestmark = pytest.mark.slow
OVERLAP = ["rollout.overlap=true"]
LEARNER = [*OVERLAP, "rollout.overlap_old_logprobs=learner"]


def test_learner_recomputed_old_logprobs_train_like_the_engines_and_resume(ray_cluster, tiny_model_dir, tmp_path):
    engine = tmp_path / "engine"
    rl_runs.run(rl_runs.config(tiny_model_dir, engine, *OVERLAP))
    learner, resumed = tmp_path / "learner", tmp_path / "resumed"

    snapshot = rl_runs.copy_after_checkpoint(learner, resumed, step=2)  # a learner death writes nothing more
    rl_runs.run(rl_runs.config(tiny_model_dir, learner, *LEARNER), on_step=snapshot)
    want, got = rl_runs.rows(engine), rl_runs.rows(learner)
    rl_runs.assert_same_metrics(got, want, rel=1e-3, atol=1e-5)
    drift = [r["learner/log_ratio_abs"] for r in got]
    assert drift[0] < 1e-6, drift  # step 0: the copy is the current weights
    # later: the copy is one update old. Weights first change at the first step with a group of unequal rewards
    # (before it, every advantage is zero); from then on Adam's momentum moves them at every step, so the ratio
    # must move at every later step and stay at one up to and including that step
    first = next(i for i, r in enumerate(got) if r["groups/trained_zero_variance_fraction"] < 1)
    assert first < len(got) - 1, drift
    assert max(drift[: first + 1]) < 1e-6 and min(drift[first + 1:]) > 1e-4, (first, drift)
    for g, w in zip(got, want):
        assert abs(g["learner/log_ratio_abs"] - w["learner/log_ratio_abs"]) <= 1e-3 * w["learner/log_ratio_abs"] + 1e-6

    assert (resumed / "checkpoints" / "step_000002" / "prev_policy.pt").exists()
    ran: list[int] = []  # a resume that started over would log the same numbers too
    rl_runs.run(rl_runs.config(tiny_model_dir, resumed, *LEARNER, "checkpoint.resume=true"), on_step=ran.append)
    assert ran == list(range(2, len(got)))
    rl_runs.assert_same_metrics(rl_runs.rows(resumed), got)


def test_learner_copy_in_bf16_gives_a_ratio_of_exactly_one_at_step_0(ray_cluster, tiny_model_dir, tmp_path):
    # DeepSpeed's bf16 casts the parameters but keeps the rotary inv_freq buffer in float32; a copy cast whole
    # rounded it and put |log ratio| at 0.04-0.09 with equal weights (seen on an H100, then here in bf16 on CPU)
    rl_runs.run(rl_runs.config(tiny_model_dir, tmp_path, *LEARNER, "learner.precision=bf16", "run.steps=1"))
    assert rl_runs.rows(tmp_path)[0]["learner/log_ratio_abs"] == 0.0
