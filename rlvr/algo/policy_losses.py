"""Per-token policy objectives and the rollout/learner mismatch correction, as pure functions on tensors.

Shape suffixes: B sequences, T completion positions. Each objective returns the per-token loss (to be masked and
aggregated by the caller) and boolean maps of where its clip was active, so that the statistics are the caller's.

- `clipped`: PPO's clipped surrogate (grpo.clipped_policy_loss), with DAPO's asymmetric clip.
- `dual_clip` (Ye et al., 2020, "Mastering complex control in MOBA games"): for A < 0 the loss is also capped at
  -c*A, so a token whose ratio exploded cannot push the loss without bound.
- `gspo` (Zheng et al., 2025): one ratio per sequence, exp(mean_t log(pi/pi_old)) (length-normalised), clipped
  per sequence; written in GSPO-token form, sg[s] * pi/sg[pi], whose value is s and whose gradient with
  seq_mean aggregation is GSPO's.
- `cispo` (MiniMax-M1, 2025): REINFORCE on log pi weighted by the clipped, stop-gradient ratio; no token's
  gradient is dropped by the clip, only its weight bounded.
"""

from __future__ import annotations

import torch

from rlvr.algo.grpo import clipped_policy_loss


def clip_sides(ratio_BT: torch.Tensor, adv_B: torch.Tensor, clip_low: float, clip_high: float):
    """Where PPO's clip takes over: below 1-clip_low with A<0 (low), above 1+clip_high with A>0 (high)."""
    adv_B1 = adv_B.unsqueeze(-1)
    low_BT = (ratio_BT < 1 - clip_low) & (adv_B1 < 0)
    high_BT = (ratio_BT > 1 + clip_high) & (adv_B1 > 0)
    return low_BT, high_BT


def dual_clip_policy_loss(logp_BT: torch.Tensor, old_logp_BT: torch.Tensor, adv_B: torch.Tensor, clip_low: float,
                          clip_high: float, clip_c: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The clipped loss, capped at -c*A for negative advantages; returns the loss and where the cap was active."""
    pg_BT, _ = clipped_policy_loss(logp_BT, old_logp_BT, adv_B, clip_low, clip_high)
    adv_B1 = adv_B.unsqueeze(-1).expand_as(pg_BT)
    cap_BT = -clip_c * adv_B1
    capped_BT = (adv_B1 < 0) & (cap_BT < pg_BT)
    return torch.where(capped_BT, cap_BT, pg_BT), capped_BT


def sequence_log_ratio(logp_BT: torch.Tensor, old_logp_BT: torch.Tensor, mask_BT: torch.Tensor) -> torch.Tensor:
    """mean over a sequence's tokens of log(pi/pi_old); 0 for a sequence with no tokens."""
    mask_f = mask_BT.to(logp_BT.dtype)
    return ((logp_BT - old_logp_BT) * mask_f).sum(-1) / mask_f.sum(-1).clamp(min=1)


def gspo_policy_loss(logp_BT: torch.Tensor, old_logp_BT: torch.Tensor, adv_B: torch.Tensor, mask_BT: torch.Tensor,
                     clip_low: float, clip_high: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token GSPO loss (every token of a sequence has the sequence's value) and the sequence ratios s_B."""
    s_B = torch.exp(sequence_log_ratio(logp_BT, old_logp_BT, mask_BT))
    # value s for every token; gradient s * d log pi_t (the token's own logprob, the sequence ratio held fixed)
    s_BT = s_B.detach().unsqueeze(-1) * torch.exp(logp_BT - logp_BT.detach())
    adv_B1 = adv_B.unsqueeze(-1)
    clipped_BT = torch.clamp(s_BT, 1 - clip_low, 1 + clip_high) * adv_B1
    return -torch.minimum(s_BT * adv_B1, clipped_BT), s_B.detach()


def cispo_policy_loss(logp_BT: torch.Tensor, old_logp_BT: torch.Tensor, adv_B: torch.Tensor, clip_low: float,
                      clip_high: float) -> tuple[torch.Tensor, torch.Tensor]:
    """-sg(clip(ratio)) * A * log pi per token, and the (detached) clipped weights."""
    ratio_BT = torch.exp(logp_BT.detach() - old_logp_BT)
    weight_BT = torch.clamp(ratio_BT, 1 - clip_low, 1 + clip_high)
    return -weight_BT * adv_B.unsqueeze(-1) * logp_BT, weight_BT


def rollout_is_weights(old_logp_BT: torch.Tensor, rollout_logp_BT: torch.Tensor, mask_BT: torch.Tensor,
                       cap: float, mode: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Importance weights pi_learner_old / pi_rollout per token (no gradient), for the engine/learner mismatch.

    truncate (TIS, Yao et al., 2025): min(ratio, cap). mask (MIS): ratio, or 0 where it exceeds cap (the token
    leaves the loss). log: weight 1, only the statistics. Statistics are sums over the mask's tokens, except the
    `_max` one; 0-d tensors (no host sync)."""
    log_ratio_BT = (old_logp_BT - rollout_logp_BT).detach()
    ratio_BT = log_ratio_BT.exp()
    over_BT = ratio_BT > cap
    if mode == "truncate":
        weights_BT = ratio_BT.clamp(max=cap)
    elif mode == "mask":
        weights_BT = torch.where(over_BT, torch.zeros_like(ratio_BT), ratio_BT)
    elif mode == "log":
        weights_BT = torch.ones_like(ratio_BT)
    else:
        raise ValueError(f"unknown rollout importance-sampling mode {mode!r}")
    mask_b = mask_BT.bool()
    abs_BT = log_ratio_BT.abs() * mask_b
    stats = {
        "rollout_log_ratio_abs_sum": abs_BT.sum(),
        "rollout_log_ratio_abs_max": abs_BT.max() if abs_BT.numel() else abs_BT.new_zeros(()),
        "rollout_is_over_cap_sum": (over_BT & mask_b).sum(),
        "rollout_is_weight_sum": (weights_BT * mask_b).sum(),
    }
    return weights_BT, stats
