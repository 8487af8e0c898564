"""Advantage estimators, policy losses, aggregations and the rollout/learner mismatch correction against values
computed by hand (rlvr/algo/advantages.py, rlvr/algo/policy_losses.py, rlvr/algo/losses.py)."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.algo import advantages as adv
from rlvr.algo import policy_losses as pl
from rlvr.algo.losses import LOSSES, LossInputs, add_stats, aggregation, build_loss, stats_to_floats
from rlvr.config import AlgorithmSection, ConfigError, load_config

def close(t: torch.Tensor, expected) -> bool:
    torch.testing.assert_close(t, torch.tensor(expected, dtype=t.dtype), rtol=1e-6, atol=1e-6)
    return True


# -- advantage estimators ----------------------------------------------------------------------------------------


def test_estimators_by_hand():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0], [3.0, 0.0, 0.0, 0.0]])
    # group 0: mean 0.5, unbiased std sqrt(1/3); group 1: mean 0.75, unbiased std sqrt((2.25^2 + 3*0.75^2)/3) = 1.5
    s0 = math.sqrt(1 / 3)
    assert close(adv.grpo(r, eps=0.0), [[0.5 / s0, -0.5 / s0, -0.5 / s0, 0.5 / s0], [2.25 / 1.5, -0.5, -0.5, -0.5]])
    assert close(adv.drgrpo(r), [[0.5, -0.5, -0.5, 0.5], [2.25, -0.75, -0.75, -0.75]])
    # leave-one-out: 1 - mean(0, 0, 1) = 2/3; 0 - mean(1, 0, 1) = -2/3; 3 - mean(0, 0, 0) = 3; 0 - mean(3, 0, 0) = -1
    assert close(adv.rloo(r), [[2 / 3, -2 / 3, -2 / 3, 2 / 3], [3.0, -1.0, -1.0, -1.0]])


def test_reinforce_pp_normalises_over_the_batch():
    r = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    # centred per group: [[.5, -.5], [0, 0]]; batch mean 0, unbiased batch std sqrt((.25 + .25) / 3) = sqrt(1/6)
    k = 0.5 * math.sqrt(6)
    assert close(adv.reinforce_pp(r, eps=0.0), [[k, -k], [0.0, 0.0]])


@pytest.mark.parametrize("name", sorted(adv.ESTIMATORS))
def test_estimators_edge_cases(name):
    fn = adv.ESTIMATORS[name]
    assert fn(torch.tensor([[2.0], [5.0]])).tolist() == [[0.0], [0.0]]  # groups of one: no baseline, no signal
    assert fn(torch.full((2, 3), 0.7)).abs().max().item() < 1e-6  # all-equal rewards: no signal
    assert not fn(torch.tensor([[1.0, 0.0, 1.0]])).isnan().any()


def test_scale_by_std_maps_to_drgrpo_and_conflicts_are_one_line():
    assert adv.resolve("grpo", scale_by_std=False) is adv.drgrpo
    assert adv.resolve("grpo", scale_by_std=True) is adv.grpo
    assert adv.resolve("rloo", scale_by_std=True) is adv.rloo
    with pytest.raises(ConfigError, match=r"scale_by_std=false .* advantage=rloo"):
        load_config(None, ["model.path=x", "algorithm.advantage=rloo", "algorithm.scale_by_std=false"])


def test_overlong_penalty_by_hand():
    # max 10 tokens, last 4 are the buffer: 0 up to 6 tokens, then (6 - L) / 4, and -1 beyond the limit
    assert [adv.overlong_penalty(n, 10, 4) for n in (3, 6, 8, 10, 11)] == [0.0, 0.0, -0.5, -1.0, -1.0]
    assert adv.overlong_penalty(7, 10, 4, factor=2.0) == -0.5


# -- policy losses -----------------------------------------------------------------------------------------------


def test_dual_clip_by_hand():
    old = torch.zeros(1, 2)
    logp = torch.log(torch.tensor([[4.0, 0.5]]))
    # A = -1: clipped loss max(r, clip(r)) = [4, 0.8]; the cap -c*A = 3 bounds the first
    loss, capped = pl.dual_clip_policy_loss(logp, old, torch.tensor([-1.0]), 0.2, 0.2, 3.0)
    assert loss[0].tolist() == pytest.approx([3.0, 0.8])
    assert capped[0].tolist() == [True, False]
    # A = 2: the plain clipped loss, -min(r*A, clip(r)*A) = [-2.4, -1.0]
    loss, capped = pl.dual_clip_policy_loss(logp, old, torch.tensor([2.0]), 0.2, 0.2, 3.0)
    assert loss[0].tolist() == pytest.approx([-2.4, -1.0])
    assert not capped.any()


def test_gspo_sequence_ratio_value_and_gradient():
    old = torch.zeros(1, 3)
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    # token ratios 2 and 8 (the third is padding): s = exp(mean(log 2, log 8)) = 4
    logp = torch.log(torch.tensor([[2.0, 8.0, 100.0]])).requires_grad_()
    loss, s = pl.gspo_policy_loss(logp, old, torch.tensor([1.0]), mask, 0.2, 0.2)
    assert s.tolist() == pytest.approx([4.0])
    assert loss[0, :2].tolist() == pytest.approx([-1.2, -1.2])  # clipped at 1 + 0.2 for A > 0
    # unclipped (clip_high 10): d/d logp_t of the seq-mean loss -s*A = -s * A / |y| for each real token
    logp.grad = None
    loss, _ = pl.gspo_policy_loss(logp, old, torch.tensor([1.0]), mask, 0.2, 10.0)
    ((loss * mask).sum(-1) / mask.sum(-1)).sum().backward()
    assert logp.grad[0].tolist() == pytest.approx([-2.0, -2.0, 0.0])
    # A < 0: -min(-s, -clip(s)) = s = 4 (the clip cannot help a sequence that already moved away)
    loss, _ = pl.gspo_policy_loss(logp, old, torch.tensor([-1.0]), mask, 0.2, 0.2)
    assert loss[0, 0].item() == pytest.approx(4.0)


def test_gspo_fully_masked_sequence_is_finite_and_ignored():
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -0.5]], requires_grad=True)
    mask = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    loss, s = pl.gspo_policy_loss(logp, torch.zeros(2, 2), torch.tensor([1.0, 1.0]), mask, 0.2, 0.2)
    assert s[0].item() == 1.0 and torch.isfinite(loss).all()
    (loss * mask).sum().backward()
    assert logp.grad[0].tolist() == [0.0, 0.0]


def test_cispo_by_hand():
    old = torch.zeros(1, 2)
    logp = torch.log(torch.tensor([[2.0, 0.5]])).requires_grad_()
    # no lower bound (clip_low 1), upper 1 + 0.28: weights [1.28, 0.5]; loss -w * A * log pi
    loss, w = pl.cispo_policy_loss(logp, old, torch.tensor([1.0]), 1.0, 0.28)
    assert w[0].tolist() == pytest.approx([1.28, 0.5])
    assert loss[0].tolist() == pytest.approx([-1.28 * math.log(2), -0.5 * math.log(0.5)])
    loss.sum().backward()
    # the weight is a constant: every token keeps a gradient, even the clipped one
    assert logp.grad[0].tolist() == pytest.approx([-1.28, -0.5])


def test_rollout_is_weights_by_hand():
    old = torch.log(torch.tensor([[1.0, 0.5, 0.9]]))
    rollout = torch.log(torch.tensor([[0.25, 0.5, 0.3]]))  # ratios 4, 1, 3
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    w, stats = pl.rollout_is_weights(old, rollout, mask, 2.0, "truncate")
    assert w[0].tolist() == pytest.approx([2.0, 1.0, 2.0])
    assert stats["rollout_is_over_cap_sum"] == 1.0  # the third token is over the cap but not in the loss
    assert stats["rollout_log_ratio_abs_sum"] == pytest.approx(math.log(4))
    assert stats["rollout_log_ratio_abs_max"] == pytest.approx(math.log(4))
    w, _ = pl.rollout_is_weights(old, rollout, mask, 2.0, "mask")
    assert w[0].tolist() == pytest.approx([0.0, 1.0, 0.0])
    w, _ = pl.rollout_is_weights(old, rollout, mask, 2.0, "log")
    assert w[0].tolist() == [1.0, 1.0, 1.0]


def test_constant_normaliser_aggregation_by_hand():
    loss_BT = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    mask_BT = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    agg = aggregation(AlgorithmSection(loss_agg="seq_mean_token_sum_norm", norm_length=4))
    # (1 + 2 + 3 + 4) / (2 sequences * 4): the sum over tokens, one constant for every sequence
    assert agg.count([3, 1]) == 8.0
    assert agg.reduce(loss_BT, mask_BT, agg.count([3, 1])).item() == pytest.approx(10 / 8)
    assert agg.count([3, 0]) == 4.0  # a sequence with no loss tokens (masked as truncated) is not counted
    assert load_config(None, ["model.path=x", "algorithm.loss_agg=seq_mean_token_sum_norm",
                              "rollout.max_new_tokens=12"]).algorithm.norm_length == 12


# -- the registered losses as the learner calls them ---------------------------------------------------------------


def inputs(**kw) -> LossInputs:
    base = dict(logp_BT=torch.log(torch.tensor([[0.5, 0.25], [0.5, 0.5]])).requires_grad_(),
                old_logp_BT=torch.log(torch.tensor([[0.5, 0.25], [0.5, 0.5]])),
                advantages_B=torch.tensor([1.0, -1.0]), mask_BT=torch.tensor([[True, True], [False, False]]))
    return LossInputs(**{**base, **kw})


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_on_policy_is_minus_the_advantage(name):
    """On-policy (ratio 1, no clip) every registered loss is -A per token; the fully masked row adds nothing."""
    x = inputs()
    loss, stats = build_loss(AlgorithmSection(loss=name))(x, normalizer=2.0)
    if name == "cispo":  # -A * log pi, whose gradient is the others' gradient at ratio 1
        assert loss.item() == pytest.approx(-(math.log(0.5) + math.log(0.25)) / 2 * 1.0)
    else:
        assert loss.item() == pytest.approx(-1.0)
    loss.backward()
    assert x.logp_BT.grad[0].tolist() == pytest.approx([-0.5, -0.5])  # -A / normaliser
    assert x.logp_BT.grad[1].tolist() == [0.0, 0.0]
    assert stats["tokens"] == 2.0 and stats["clip_fraction_sum"] == 0.0 and stats["approx_kl_sum"] == 0.0
    assert {"clip_low_fraction_sum", "clip_high_fraction_sum", "log_ratio_abs_sum", "pg_loss_sum"} <= set(stats)


def test_clip_fractions_low_and_high():
    old = torch.zeros(2, 2)
    logp = torch.log(torch.tensor([[1.5, 1.0], [0.5, 1.0]]))  # A>0 row: one ratio above 1.2; A<0 row: one below 0.8
    _, stats = build_loss(AlgorithmSection())(inputs(logp_BT=logp, old_logp_BT=old,
                                                     mask_BT=torch.ones(2, 2, dtype=torch.bool)), 4.0)
    assert (stats["clip_high_fraction_sum"], stats["clip_low_fraction_sum"]) == (1.0, 1.0)


@pytest.mark.parametrize("mode,weights", [("truncate", [2.0, 1.0]), ("mask", [0.0, 1.0]), ("log", [1.0, 1.0])])
def test_rollout_correction_weights_the_loss(mode, weights):
    # learner's old probs [0.5, 0.25], engine's [0.125, 0.25]: ratios 4 (over the cap 2) and 1
    rollout = torch.log(torch.tensor([[0.125, 0.25], [0.5, 0.5]]))
    x = inputs(rollout_logp_BT=rollout)
    loss, stats = build_loss(AlgorithmSection(rollout_is=mode, rollout_is_cap=2.0))(x, 2.0)
    assert loss.item() == pytest.approx(-sum(weights) / 2)  # -A * w per token, token mean over 2
    assert stats["rollout_is_over_cap_sum"] == 1.0
    assert stats["rollout_log_ratio_abs_max"] == pytest.approx(math.log(4))
    # approx KL (k3) of the engine to the learner from the engine's samples: r - 1 - log r, r = p / p_rollout = 4
    assert stats["approx_kl_sum"] == pytest.approx(4 - 1 - math.log(4))


def test_rollout_correction_config_conflict_is_one_line():
    with pytest.raises(ConfigError, match=r"algorithm.rollout_is .* overlap_old_logprobs=engine"):
        load_config(None, ["model.path=x", "algorithm.rollout_is=truncate", "rollout.overlap=true"])
    with pytest.raises(ConfigError, match=r"algorithm.overlong_buffer=40 is longer than rollout.max_new_tokens=32"):
        load_config(None, ["model.path=x", "algorithm.overlong_buffer=40"])
    with pytest.raises(ConfigError, match=r"mask_truncated_completions is not implemented for packed"):
        load_config(None, ["model.path=x", "algorithm.mask_truncated_completions=true",
                           "learner.max_tokens_per_micro_batch=64"])


# -- the controller's side: shaping, truncation flags, engine logprobs ------------------------------------------------


def test_build_rollouts_shapes_rewards_and_flags_truncation():
    from rlvr.rewards.types import RewardResult, Verdict
    from rlvr.rollout.base import Completion
    from rlvr.trainer.grpo_loop import Group, Overlong, build_rollouts

    # lengths 2, 3, 4 under a budget of 4 with a 2-token buffer: penalties 0, -0.5, -1; the last hit the budget
    completions = [Completion(0, [5] * n, [-1.0] * n, "", "length" if n == 4 else "stop") for n in (2, 3, 4)]
    results = [RewardResult(1.0, Verdict.CORRECT)] * 3
    rollouts, rewards_BG = build_rollouts([Group([7], completions, results)], adv.drgrpo, Overlong(4, 2, 1.0))
    assert rewards_BG.tolist() == [[1.0, 0.5, 0.0]]
    assert [r.advantage for r in rollouts] == pytest.approx([0.5, 0.0, -0.5])  # centred shaped rewards
    assert [r.truncated for r in rollouts] == [False, False, True]
    unshaped, _ = build_rollouts([Group([7], completions, results)], adv.drgrpo)
    assert [r.advantage for r in unshaped] == [0.0, 0.0, 0.0]


def test_the_correction_asks_the_engine_for_logprobs():
    from rlvr.trainer.grpo_loop import sampling_params

    plain = load_config(None, ["model.path=x"])
    corrected = load_config(None, ["model.path=x", "algorithm.rollout_is=truncate"])
    assert not sampling_params(plain, 0).logprobs
    assert sampling_params(corrected, 0).logprobs


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_keeps_its_statistics_on_the_device(name):
    """Statistics are detached 0-d tensors, never Python floats: a float() is a host sync per statistic per
    micro-batch on a GPU (the learner converts them once per update, `stats_to_floats`). KL and the rollout
    correction on, so that every statistic a loss can return is there."""
    alg = AlgorithmSection(loss=name, kl_coef=0.1, rollout_is="truncate", rollout_is_cap=2.0)
    x = inputs(ref_logp_BT=torch.zeros(2, 2), rollout_logp_BT=torch.log(torch.tensor([[0.125, 0.25], [0.5, 0.5]])))
    _, stats = build_loss(alg)(x, 2.0)
    assert {"kl_sum", "rollout_log_ratio_abs_max", "tokens"} <= set(stats)
    for key, v in stats.items():
        assert isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad, key


def test_add_stats_on_the_device_then_one_conversion():
    totals = {}
    for pg, ratio_max in ((1.5, 0.25), (2.0, 0.125)):  # micro-batches: sums add up, `_max` keeps the largest
        add_stats(totals, {"pg_loss_sum": torch.tensor(pg), "tokens": torch.tensor(3),
                           "rollout_log_ratio_abs_max": torch.tensor(ratio_max)})
    assert all(isinstance(v, torch.Tensor) for v in totals.values())
    out = stats_to_floats({**totals, "lr": 0.5})
    assert out == {"pg_loss_sum": 3.5, "tokens": 6.0, "rollout_log_ratio_abs_max": 0.25, "lr": 0.5}
    assert all(type(v) is float for v in out.values())
    ranks = {}
    for rank_stats in (out, {**out, "rollout_log_ratio_abs_max": 0.5}):  # across ranks: Python floats
        add_stats(ranks, rank_stats)
    assert ranks["pg_loss_sum"] == 7.0 and ranks["rollout_log_ratio_abs_max"] == 0.5
