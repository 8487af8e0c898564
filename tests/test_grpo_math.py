"""GRPO's pure functions against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.algo import grpo


def test_group_advantages_by_hand():
    rewards_BG = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.5, 0.5, 0.5, 0.5]])
    adv = grpo.group_advantages(rewards_BG, eps=0.0 + 1e-12)
    # group 1: mean 0.5, unbiased std = sqrt(((.5^2)*4)/3) = sqrt(1/3)
    s = math.sqrt(1 / 3)
    assert adv[0].tolist() == pytest.approx([0.5 / s, -0.5 / s, -0.5 / s, 0.5 / s], rel=1e-6)
    assert adv[1].tolist() == [0.0, 0.0, 0.0, 0.0]  # equal rewards carry no signal
    centred = grpo.group_advantages(rewards_BG, scale_by_std=False)
    assert centred[0].tolist() == pytest.approx([0.5, -0.5, -0.5, 0.5])


def test_token_logprobs_and_entropy_by_hand():
    logits_BTV = torch.tensor([[[0.0, math.log(3.0)]]])  # softmax = [1/4, 3/4]
    assert grpo.token_logprobs(logits_BTV, torch.tensor([[1]])).item() == pytest.approx(math.log(0.75))
    # temperature 2 halves the logits: softmax([0, log 3 / 2]) = [1, sqrt 3] / (1 + sqrt 3)
    p1 = math.sqrt(3) / (1 + math.sqrt(3))
    assert grpo.token_logprobs(logits_BTV, torch.tensor([[1]]), 2.0).item() == pytest.approx(math.log(p1))
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    logp, ent = grpo.logprobs_and_entropy(logits_BTV, torch.tensor([[1]]))
    assert logp.item() == pytest.approx(math.log(0.75))
    assert ent.item() == pytest.approx(h)


def test_kl_estimators_by_hand():
    logp, ref = torch.tensor([[math.log(0.5)]]), torch.tensor([[math.log(0.25)]])
    assert grpo.kl_penalty(logp, ref, "k1").item() == pytest.approx(math.log(2))
    # k3 = r - log r - 1 with r = p_ref / p = 0.5
    assert grpo.kl_penalty(logp, ref, "k3").item() == pytest.approx(0.5 - math.log(0.5) - 1)
    with pytest.raises(ValueError):
        grpo.kl_penalty(logp, ref, "k2")


def test_clipped_loss_by_hand():
    old = torch.zeros(1, 3)
    logp = torch.log(torch.tensor([[1.5, 0.7, 1.1]]))  # ratios 1.5, 0.7, 1.1
    loss_pos, clipped_pos = grpo.clipped_policy_loss(logp, old, torch.tensor([2.0]), 0.2, 0.2)
    # A>0: min(r*A, clip(r)*A) = [1.2*2, 0.7*2, 1.1*2]
    assert loss_pos[0].tolist() == pytest.approx([-2.4, -1.4, -2.2])
    assert clipped_pos[0].tolist() == [True, False, False]
    loss_neg, clipped_neg = grpo.clipped_policy_loss(logp, old, torch.tensor([-1.0]), 0.2, 0.2)
    # A<0: min(-r, -clip(r)) = [-1.5, -0.8, -1.1] -> loss = [1.5, 0.8, 1.1]
    assert loss_neg[0].tolist() == pytest.approx([1.5, 0.8, 1.1])
    assert clipped_neg[0].tolist() == [False, True, False]
    # clip-higher: eps_high 0.6 lets ratio 1.5 through for A>0
    loss_hi, _ = grpo.clipped_policy_loss(logp, old, torch.tensor([2.0]), 0.2, 0.6)
    assert loss_hi[0, 0].item() == pytest.approx(-3.0)


def test_aggregation_by_hand():
    loss_BT = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    mask_BT = torch.tensor([[1, 1, 1], [1, 0, 0]])
    # token_mean over 4 tokens: (1+2+3+4)/4; seq_mean: (2 + 4)/2
    assert grpo.aggregate(loss_BT, mask_BT, "token_mean", 4).item() == pytest.approx(2.5)
    assert grpo.aggregate(loss_BT, mask_BT, "seq_mean", 2).item() == pytest.approx(3.0)
    # the global normaliser makes micro-batch sums add up to the full-batch mean
    halves = grpo.aggregate(loss_BT[:1], mask_BT[:1], "token_mean", 4) + grpo.aggregate(
        loss_BT[1:], mask_BT[1:], "token_mean", 4)
    assert halves.item() == pytest.approx(2.5)


def test_grpo_loss_on_policy_gradient_is_advantage_weighted():
    """At ratio 1 the loss is -mean(A) and d loss / d logp = -A / N for every unmasked token."""
    logp = torch.zeros(2, 2, requires_grad=True)
    adv = torch.tensor([1.0, -0.5])
    mask = torch.tensor([[1, 1], [1, 0]])
    cfg = grpo.LossConfig(kl_coef=0.1, kl_estimator="k3")
    loss, stats = grpo.grpo_loss(logp, logp.detach(), adv, mask, cfg, 3.0, ref_logp_BT=torch.zeros(2, 2))
    loss.backward()
    assert loss.item() == pytest.approx(-(1 + 1 - 0.5) / 3)
    assert logp.grad.flatten().tolist() == pytest.approx([-1 / 3, -1 / 3, 0.5 / 3, 0.0])
    assert stats["tokens"] == 3 and stats["kl_sum"] == pytest.approx(0.0)
