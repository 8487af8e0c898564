"""GRPO as pure functions on tensors (no model, no distributed state), tested against hand-computed values.

Shape suffixes: B sequences, G samples per prompt, T completion tokens, V vocabulary.

Where we depart from the GRPO paper (Shao et al., 2024): the KL term is optional (default off, as in DAPO and
Dr. GRPO); the clip may be asymmetric (DAPO's clip-higher); `token_mean` weighs every token of the batch equally
(DAPO) instead of averaging per sequence first (`seq_mean`, the paper's form); `scale_by_std=False` gives Dr.
GRPO's centred rewards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


def group_advantages(rewards_BG: torch.Tensor, scale_by_std: bool = True, eps: float = 1e-6) -> torch.Tensor:
    """(r - mean_group) / (std_group + eps); groups with equal rewards get advantage 0."""
    centred_BG = rewards_BG - rewards_BG.mean(dim=-1, keepdim=True)
    if not scale_by_std:
        return centred_BG
    # unbiased std as in the GRPO reference implementations; a group of one has no spread
    std_B1 = rewards_BG.std(dim=-1, keepdim=True) if rewards_BG.shape[-1] > 1 else torch.zeros_like(centred_BG)
    return centred_BG / (std_B1 + eps)


def token_logprobs(logits_BTV: torch.Tensor, targets_BT: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log p(target) under softmax(logits / temperature), the distribution rollouts sampled from."""
    logp_BTV = torch.log_softmax(logits_BTV.float() / temperature, dim=-1)
    return logp_BTV.gather(-1, targets_BT.unsqueeze(-1)).squeeze(-1)


def logprobs_and_entropy(logits_BTV: torch.Tensor, targets_BT: torch.Tensor, temperature: float = 1.0):
    """Both from one log-softmax (the largest tensor of a step); the entropy is a metric, so it carries no grad."""
    logp_BTV = torch.log_softmax(logits_BTV.float() / temperature, dim=-1)
    logp_BT = logp_BTV.gather(-1, targets_BT.unsqueeze(-1)).squeeze(-1)
    with torch.no_grad():
        entropy_BT = -(logp_BTV.exp() * logp_BTV).sum(-1)
    return logp_BT, entropy_BT


def kl_penalty(logp_BT: torch.Tensor, ref_logp_BT: torch.Tensor, estimator: str) -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) from samples of the policy (Schulman's k1 and k3)."""
    log_ratio_BT = ref_logp_BT - logp_BT
    if estimator == "k1":
        return -log_ratio_BT
    if estimator == "k3":
        return log_ratio_BT.exp() - log_ratio_BT - 1
    raise ValueError(f"unknown KL estimator {estimator!r}")


def clipped_policy_loss(
    logp_BT: torch.Tensor, old_logp_BT: torch.Tensor, adv_B: torch.Tensor, clip_low: float, clip_high: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate, negated for minimisation; returns per-token loss and where the clip was active."""
    ratio_BT = torch.exp(logp_BT - old_logp_BT)
    adv_B1 = adv_B.unsqueeze(-1)
    unclipped_BT = ratio_BT * adv_B1
    clipped_BT = torch.clamp(ratio_BT, 1 - clip_low, 1 + clip_high) * adv_B1
    return -torch.minimum(unclipped_BT, clipped_BT), (clipped_BT < unclipped_BT)


@dataclass(frozen=True)
class Aggregation:
    """How a batch's per-token loss becomes one number: what is counted (`count`, of the *global* batch) and how a
    micro-batch's share of the sum is taken (`reduce`). The one place where `algorithm.loss_agg` is looked at."""

    count: Callable[[list[int]], float]
    """Given completion lengths: how many units (tokens, sequences) the loss is averaged over."""
    reduce: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
    """(loss_BT, mask_BT, global normaliser) -> this micro-batch's share of the global mean."""


def _token_mean(loss_BT: torch.Tensor, mask_BT: torch.Tensor, normalizer: float) -> torch.Tensor:
    return (loss_BT * mask_BT).sum() / normalizer


def _seq_mean(loss_BT: torch.Tensor, mask_BT: torch.Tensor, normalizer: float) -> torch.Tensor:
    per_seq_B = (loss_BT * mask_BT).sum(-1) / mask_BT.sum(-1).clamp(min=1)
    return per_seq_B.sum() / normalizer


AGGREGATIONS: dict[str, Aggregation] = {
    "token_mean": Aggregation(count=lambda lengths: float(sum(lengths)), reduce=_token_mean),
    # a sequence with no token in the loss (mask_truncated_completions) is not counted
    "seq_mean": Aggregation(count=lambda lengths: float(sum(n > 0 for n in lengths)), reduce=_seq_mean),
}


def aggregate(loss_BT: torch.Tensor, mask_BT: torch.Tensor, mode: str, normalizer: float) -> torch.Tensor:
    """Sum of the batch's loss divided by `normalizer` (tokens or sequences of the *global* batch).

    Dividing by the global count, not the micro-batch's, makes the gradient independent of how the batch is split
    into micro-batches and data-parallel ranks.
    """
    if mode not in AGGREGATIONS:
        raise ValueError(f"unknown loss aggregation {mode!r}")
    return AGGREGATIONS[mode].reduce(loss_BT, mask_BT.to(loss_BT.dtype), normalizer)


@dataclass(frozen=True)
class LossConfig:
    clip_low: float = 0.2
    clip_high: float = 0.2
    kl_coef: float = 0.0
    kl_estimator: str = "k3"
    loss_agg: str = "token_mean"


def grpo_loss(
    logp_BT: torch.Tensor,
    old_logp_BT: torch.Tensor,
    adv_B: torch.Tensor,
    mask_BT: torch.Tensor,
    cfg: LossConfig,
    normalizer: float,
    ref_logp_BT: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Loss of one micro-batch (a share of the global batch's mean) and its summed statistics (0-d tensors)."""
    pg_BT, clipped_BT = clipped_policy_loss(logp_BT, old_logp_BT, adv_B, cfg.clip_low, cfg.clip_high)
    loss_BT = pg_BT
    mask_f = mask_BT.float()
    stats = {
        "pg_loss_sum": (pg_BT.detach() * mask_f).sum(),
        "clip_fraction_sum": (clipped_BT.float() * mask_f).sum(),
        # |log ratio| to the old policy: 0 on-policy, the policy's drift (and engine/learner numerics) off it
        "log_ratio_abs_sum": ((logp_BT.detach() - old_logp_BT).abs() * mask_f).sum(),
        "tokens": mask_f.sum(),
    }
    if cfg.kl_coef > 0:
        if ref_logp_BT is None:
            raise ValueError("kl_coef > 0 needs reference logprobs")
        kl_BT = kl_penalty(logp_BT, ref_logp_BT, cfg.kl_estimator)
        loss_BT = loss_BT + cfg.kl_coef * kl_BT
        stats["kl_sum"] = (kl_BT.detach() * mask_f).sum()
    return aggregate(loss_BT, mask_BT, cfg.loss_agg, normalizer), stats
