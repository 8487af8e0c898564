"""Every registered loss and loss option through the real learner: one in-process rank (gloo) takes a step that
changes the weights, and (Ray) two DeepSpeed ranks end a step with the weights of one rank on the same batch."""

from __future__ import annotations

import random

import pytest

from rlvr.algo.losses import LOSSES
from rlvr.model_io import load_model
from rlvr.rollout.base import Rollout
from rlvr.trainer.metrics import learner_metrics
from tests.conftest import tiny_config
from tests.test_learner_dp import make_rollouts, train_once
from tests.test_learner_inprocess import build, process_group  # noqa: F401 (a fixture)


def engine_like(rollouts: list[Rollout], seed: int = 0) -> list[Rollout]:
    """Engine logprobs that differ from the learner's (~log 1/60 for a random 60-token vocabulary), some by more
    than the correction's cap, and every other completion cut at the token budget."""
    rng = random.Random(seed)
    for i, r in enumerate(rollouts):
        r.logprobs = [rng.uniform(-7.0, -2.0) for _ in r.completion_ids]
        r.truncated = i % 2 == 0
    return rollouts


CASES = {
    **{name: [f"algorithm.loss={name}"] for name in sorted(LOSSES)},
    "cispo_no_low_clip": ["algorithm.loss=cispo", "algorithm.clip_eps_low=1.0"],
    "gspo_seq_mean": ["algorithm.loss=gspo", "algorithm.loss_agg=seq_mean"],
    "drgrpo_constant_norm": ["algorithm.loss_agg=seq_mean_token_sum_norm", "algorithm.norm_length=8"],
    "tis": ["algorithm.rollout_is=truncate"],
    "mis": ["algorithm.rollout_is=mask"],
    "tis_packed": ["algorithm.rollout_is=truncate", "learner.max_tokens_per_micro_batch=24",
                   "learner.logprob_chunk_tokens=5"],
}


@pytest.mark.parametrize("case", list(CASES))
def test_one_step_changes_the_weights(process_group, tiny_model_dir, tmp_path, case):  # noqa: F811
    # two optimizer steps per batch: the second is off-policy, so the ratios (and clips) are not all 1
    learner = build(tiny_model_dir, tmp_path, "algorithm.mini_batches=2", *CASES[case])
    rollouts = engine_like(make_rollouts(16, vocab=60, seed=3))
    # the old policy's logprobs (mini-batches recompute them once, before the first step) vs the engine's
    old = learner.completion_logprobs(rollouts)
    gaps = [abs(a - b) for r, lp in zip(rollouts, old) for a, b in zip(lp, r.logprobs)]
    stats = learner.train_grpo(rollouts)
    w0, w1 = load_model(tiny_model_dir).state_dict(), learner.state_dict()
    assert max((w1[k] - w0[k]).abs().max().item() for k in w0) > 1e-3, "the update did not change the weights"
    metrics = learner_metrics(stats)
    assert {"learner/clip_low_fraction", "learner/clip_high_fraction", "learner/approx_kl",
            "learner/entropy"} <= set(metrics)
    if case in ("tis", "mis", "tis_packed"):
        assert metrics["learner/rollout_log_ratio_abs_max"] == pytest.approx(max(gaps), rel=1e-5)
        assert metrics["learner/rollout_log_ratio_abs"] == pytest.approx(sum(gaps) / len(gaps), rel=1e-5)
        assert 0 < metrics["learner/rollout_is_over_cap"] < 1


def test_truncated_completions_leave_the_loss(process_group, tiny_model_dir, tmp_path):  # noqa: F811
    rollouts = engine_like(make_rollouts(16, vocab=60, seed=4))
    kept = sum(len(r.completion_ids) for r in rollouts if not r.truncated)
    masked = build(tiny_model_dir, tmp_path / "m", "algorithm.mask_truncated_completions=true")
    assert masked.train_grpo(rollouts)["tokens"] == kept
    for r in rollouts:
        r.truncated = True  # nothing left in the loss: a zero gradient, and Adam does not move the weights
    stats = build(tiny_model_dir, tmp_path / "all", "algorithm.mask_truncated_completions=true").train_grpo(rollouts)
    assert stats["tokens"] == 0
    assert stats["grad_norm"] == 0.0


DP_CASES = {  # two Ray actor groups per case, so only two cases: grpo's own is tests/test_learner_dp.py
    "gspo_tis_masked": ["algorithm.loss=gspo", "algorithm.loss_agg=seq_mean_token_sum_norm",
                        "algorithm.rollout_is=truncate", "algorithm.mask_truncated_completions=true"],
    "dual_clip_mis_seq_mean": ["algorithm.loss=dual_clip", "algorithm.loss_agg=seq_mean", "algorithm.rollout_is=mask",
                               "algorithm.mask_truncated_completions=true"],
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(DP_CASES))
def test_two_ranks_equal_one_rank(ray_cluster, tiny_model_dir, tmp_path, case):
    common = ["data.prompts_per_step=4", "rollout.samples_per_prompt=4", "learner.micro_batch_size=2",
              "learner.lr=1e-2", "learner.zero_stage=2", "rollout.num_actors=1", "rewards.num_workers=1",
              "algorithm.mini_batches=2", "learner.resources.num_cpus=1", "rollout.resources.num_cpus=0",
              "rewards.resources.num_cpus=0", *DP_CASES[case]]
    one = tiny_config(tiny_model_dir, tmp_path / "one", "learner.num_actors=1", *common)
    two = tiny_config(tiny_model_dir, tmp_path / "two", "learner.num_actors=2", *common)
    rollouts = engine_like(make_rollouts(16, vocab=60, seed=5))
    w1 = train_once(one, tiny_model_dir, rollouts)
    w2 = train_once(two, tiny_model_dir, rollouts)
    w0 = load_model(tiny_model_dir).state_dict()
    moved = max((w1[k] - w0[k]).abs().max().item() for k in w0)
    assert moved > 1e-3, "the step did not change the weights"
    diff = max((w1[k] - w2[k]).abs().max().item() for k in w1)
    print(f"{case}: max |w_1rank - w_2ranks| = {diff:.2e}, max update = {moved:.2e}")
    assert diff < 1e-5
