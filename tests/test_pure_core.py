"""The pure core against hand-computed values, written from the mutants that survived the tests before them
(`python scripts/mutation.py core`, docs/testing.md): GRPO's functions off their easy points (several groups, a
group of one, near-equal rewards, B, T > 1, old logprobs != 0, masked tokens, off-policy KL) and the batch helpers
the learners use (collate, rollout logprobs, sharding into ranks and mini-batches)."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.rollout.base import Rollout
from rlvr.algo import grpo
from rlvr.learner.batch import collate
from rlvr.utils.batching import chunks, shard, shard_minibatches

# -- GRPO -------------------------------------------------------------------------------------------------------


def test_group_advantages_use_each_groups_own_mean_and_std():
    rewards_BG = torch.tensor([[1.0, 0.0], [3.0, 1.0], [2.0, 2.0]])
    s = math.sqrt(0.5)  # unbiased std of a pair that differs by 1 ... and by 2: sqrt(2)
    adv = grpo.group_advantages(rewards_BG, eps=1e-6)
    assert adv.tolist() == [pytest.approx([0.5 / (s + 1e-6), -0.5 / (s + 1e-6)], rel=1e-6),
                            pytest.approx([1 / (2 * s + 1e-6), -1 / (2 * s + 1e-6)], rel=1e-6), [0.0, 0.0]]


def test_group_advantages_default_eps_is_small():
    s = math.sqrt(0.5)
    assert grpo.group_advantages(torch.tensor([[1.0, 0.0]]))[0].tolist() == pytest.approx([0.5 / s, -0.5 / s], rel=1e-5)


def test_group_of_one_has_advantage_zero_and_near_equal_rewards_stay_bounded():
    assert grpo.group_advantages(torch.tensor([[1.0], [0.0]])).tolist() == [[0.0], [0.0]]
    # std 7.07e-7 is below eps: the advantage is damped (0.29), not blown up or sign-flipped
    adv = grpo.group_advantages(torch.tensor([[0.0, 1e-6]], dtype=torch.float64), eps=1e-6)
    s = math.sqrt(0.5) * 1e-6
    assert adv[0].tolist() == pytest.approx([-0.5e-6 / (s + 1e-6), 0.5e-6 / (s + 1e-6)], rel=1e-9)


def test_token_logprobs_and_entropy_over_batch_and_time():
    """B=2, T=3, V=4, temperature 0.5: every (b, t) picks its own target from its own distribution."""
    gen = torch.Generator().manual_seed(0)
    logits_BTV = torch.randn(2, 3, 4, generator=gen)
    targets_BT = torch.tensor([[0, 3, 1], [2, 2, 0]])
    want_logp, want_ent = torch.zeros(2, 3), torch.zeros(2, 3)
    for b in range(2):
        for t in range(3):
            p = torch.softmax(logits_BTV[b, t].double() / 0.5, -1)
            want_logp[b, t] = math.log(p[targets_BT[b, t]])
            want_ent[b, t] = float(-(p * p.log()).sum())
    assert torch.allclose(grpo.token_logprobs(logits_BTV, targets_BT, 0.5), want_logp, atol=1e-5)
    logp, ent = grpo.logprobs_and_entropy(logits_BTV, targets_BT, 0.5)
    assert logp.shape == ent.shape == (2, 3)
    assert torch.allclose(logp, want_logp, atol=1e-5) and torch.allclose(ent, want_ent, atol=1e-5)
    assert logp.requires_grad is False and not ent.requires_grad  # inputs carry no grad here


def test_unknown_estimator_and_aggregation_are_named_in_the_error():
    x = torch.zeros(1, 1)
    with pytest.raises(ValueError, match="^unknown KL estimator 'k2'$"):
        grpo.kl_penalty(x, x, "k2")
    with pytest.raises(ValueError, match="^unknown loss aggregation 'mean'$"):
        grpo.aggregate(x, x, "mean", 1.0)
    with pytest.raises(ValueError, match="^kl_coef > 0 needs reference logprobs$"):
        grpo.grpo_loss(x, x, torch.zeros(1), x, grpo.LossConfig(kl_coef=0.1), 1.0)


def test_clipped_loss_ratio_is_relative_to_the_old_logprobs():
    old = torch.log(torch.tensor([[0.5, 0.2]]))
    logp = torch.log(torch.tensor([[0.6, 0.1]]))  # ratios 1.2, 0.5
    loss, clipped = grpo.clipped_policy_loss(logp, old, torch.tensor([-1.0]), 0.3, 0.1)
    # A<0: -min(-r, -clip(r, .7, 1.1)) = max(r, clip(r)) = [1.2, 0.7]
    assert loss[0].tolist() == pytest.approx([1.2, 0.7], rel=1e-6)
    assert clipped[0].tolist() == [False, True]


def test_grpo_loss_statistics_and_off_policy_kl():
    """Masked tokens count nowhere; the KL term adds kl_coef * k3 per token and its gradient pulls logp to ref."""
    logp = torch.log(torch.tensor([[0.5, 0.25], [0.4, 0.9]])).requires_grad_()
    old = torch.log(torch.tensor([[0.5, 0.5], [0.5, 0.9]]))
    ref = torch.log(torch.tensor([[0.25, 0.25], [0.4, 0.9]]))
    adv = torch.tensor([1.0, -2.0])
    mask = torch.tensor([[1, 1], [1, 0]])
    cfg = grpo.LossConfig(clip_low=0.1, clip_high=0.1, kl_coef=0.5, kl_estimator="k3")
    loss, stats = grpo.grpo_loss(logp, old, adv, mask, cfg, 3.0, ref_logp_BT=ref)
    # ratios 1, 0.5, 0.8 (masked 1); A = 1, 1, -2: pg = -min(rA, clip(r)A) = [-1, -0.5, max(0.8, 0.9) * 2]
    pg = [-1.0, -0.5, 1.8]
    k3 = [0.5 - math.log(0.5) - 1, 0.0, 0.0]  # r = p_ref / p
    assert stats["pg_loss_sum"] == pytest.approx(sum(pg))
    assert stats["clip_fraction_sum"] == 1.0  # only the third token (0.8 < 0.9, A < 0)
    assert stats["log_ratio_abs_sum"] == pytest.approx(math.log(2) + math.log(1.25))
    assert stats["tokens"] == 3.0 and stats["kl_sum"] == pytest.approx(sum(k3))
    assert loss.item() == pytest.approx((sum(pg) + 0.5 * sum(k3)) / 3)
    loss.backward()
    # d k3 / d logp = 1 - p_ref / p: at token 0, 1 - 0.5 = 0.5 (> 0: lowering logp lowers the KL)
    assert logp.grad[0, 0].item() == pytest.approx((-1.0 + 0.5 * 0.5) / 3)
    assert logp.grad[1, 1].item() == 0.0
    # kl_coef 0: no KL term, no reference needed
    _, stats = grpo.grpo_loss(logp, old, adv, mask, grpo.LossConfig(), 3.0)
    assert "kl_sum" not in stats


# -- batch helpers -----------------------------------------------------------------------------------------------


def test_collate_aligns_completion_mask_window_and_rollout_logprobs():
    rollouts = [Rollout([5, 6, 7], [8, 9], [-0.1, -0.2], advantage=1.5),
                Rollout([5, 6], [10, 11, 12], [-0.3, -0.4, -0.5], advantage=-0.5)]
    mb = collate(rollouts, pad_id=0, rollout_logprobs=True)
    assert mb.input_ids_BL.tolist() == [[5, 6, 7, 8, 9], [5, 6, 10, 11, 12]]
    assert mb.attention_mask_BL.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 1]]
    # position t scores token t+1: row 0's completion tokens are at 3, 4 -> scored at 2, 3
    assert mb.completion_mask_BT.tolist() == [[False, False, True, True], [False, True, True, True]]
    assert mb.advantages_B.tolist() == [1.5, -0.5]
    assert mb.window_start == 1  # the shortest prompt (2) - 1
    assert mb.rollout_logprobs_BT.flatten().tolist() == pytest.approx([0, 0, -0.1, -0.2, 0, -0.3, -0.4, -0.5])
    assert collate(rollouts, pad_id=0).rollout_logprobs_BT is None
    assert (mb.input_ids_BL.dtype, mb.attention_mask_BL.dtype, mb.completion_mask_BT.dtype) == (
        torch.long, torch.long, torch.bool)
    moved = mb.to("cpu")
    assert moved.window_start == 1 and torch.equal(moved.rollout_logprobs_BT, mb.rollout_logprobs_BT)
    assert torch.equal(moved.completion_mask_BT, mb.completion_mask_BT)
    assert collate(rollouts[:1], pad_id=0).to("cpu").rollout_logprobs_BT is None
    # every tensor goes to the device (the meta device stands for a GPU here: no data, only placement)
    meta = mb.to("meta")
    assert {t.device.type for t in (meta.input_ids_BL, meta.attention_mask_BL, meta.completion_mask_BT,
                                    meta.advantages_B, meta.rollout_logprobs_BT)} == {"meta"}


def test_collate_pads_right_and_rejects_missing_logprobs():
    mb = collate([Rollout([1, 2], [3], [-1.0]), Rollout([4], [5, 6, 7], [-1.0] * 3)], pad_id=99)
    assert mb.input_ids_BL.tolist() == [[1, 2, 3, 99], [4, 5, 6, 7]]
    assert mb.attention_mask_BL.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
    assert mb.completion_mask_BT.tolist() == [[False, True, False], [True, True, True]]
    with pytest.raises(ValueError, match=r"^rollout 1 has 1 logprobs for 3 tokens \(the engine was not asked for "
                                         r"logprobs\?\)$"):
        collate([Rollout([1], [2], [-1.0]), Rollout([1], [2, 3, 4], [-1.0])], pad_id=0, rollout_logprobs=True)


def test_shard_is_contiguous_near_equal_and_ordered():
    assert shard(list(range(7)), 3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert shard(list(range(6)), 2) == [[0, 1, 2], [3, 4, 5]]
    assert shard([1], 3) == [[1], [], []]
    assert chunks(list(range(5)), 2) == [[0, 1], [2, 3], [4]]


def test_shard_minibatches_gives_each_rank_its_share_of_every_minibatch():
    # 8 items, 2 mini-batches of 4, 2 ranks: rank 0 gets [0, 1] of mini-batch 0 then [4, 5] of mini-batch 1
    assert shard_minibatches(list(range(8)), 2, 2) == [[0, 1, 4, 5], [2, 3, 6, 7]]
    assert shard_minibatches(list(range(8)), 2, 1) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert shard_minibatches(list(range(6)), 3, 2) == [[0, 3], [1, 4], [2, 5]]


def test_packed_batch_moves_every_tensor():
    from rlvr.data.packing import Document, collate_packed, pack

    rows = pack([Document([5, 6, 7], [True] * 3), Document([8, 9], [True] * 2)], 8, pad_id=0, split_documents=False)
    meta = collate_packed(rows).to("meta")
    assert {t.device.type for t in (meta.input_ids_BL, meta.position_ids_BL, meta.attn_bias_B1LL, meta.targets_BT,
                                    meta.loss_mask_BT)} == {"meta"}
