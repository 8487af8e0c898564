"""Advantage estimators and reward shaping as pure functions on tensors; `algorithm.advantage` picks one.

Shape suffixes: B groups (prompts), G samples per prompt. Every estimator maps a [B, G] reward tensor to a [B, G]
advantage tensor; a sequence's advantage is then spread over its tokens by the policy loss.

- `grpo` (Shao et al., 2024): (r - group mean) / (group std + eps).
- `drgrpo` (Liu et al., 2025, "Understanding R1-Zero-like training"): r - group mean (no std: the std rescales
  easy and hard prompts differently, a difficulty bias).
- `rloo` (Ahmadian et al., 2024): r - mean of the *other* G-1 samples = G/(G-1) * (r - group mean).
- `reinforce_pp` (Hu, 2025, REINFORCE++-baseline): r - group mean, then normalised over the whole batch
  ((x - batch mean) / batch std), which keeps the scale stable without a per-group std.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

AdvantageFn = Callable[[torch.Tensor], torch.Tensor]
EPS = 1e-6


def grpo(rewards_BG: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    centred_BG = rewards_BG - rewards_BG.mean(dim=-1, keepdim=True)
    # unbiased std as in the GRPO reference implementations; a group of one has no spread (0, not NaN)
    if rewards_BG.shape[-1] < 2:
        return centred_BG
    return centred_BG / (rewards_BG.std(dim=-1, keepdim=True) + eps)


def drgrpo(rewards_BG: torch.Tensor) -> torch.Tensor:
    return rewards_BG - rewards_BG.mean(dim=-1, keepdim=True)


def rloo(rewards_BG: torch.Tensor) -> torch.Tensor:
    G = rewards_BG.shape[-1]
    if G < 2:  # no other sample to form a baseline from: no signal
        return torch.zeros_like(rewards_BG)
    return drgrpo(rewards_BG) * (G / (G - 1))


def reinforce_pp(rewards_BG: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    centred_BG = drgrpo(rewards_BG)
    if centred_BG.numel() < 2:
        return centred_BG
    # unbiased std over every sample of the batch (torch's default); all-equal rewards give 0 / eps = 0
    return (centred_BG - centred_BG.mean()) / (centred_BG.std() + eps)


ESTIMATORS: dict[str, AdvantageFn] = {"grpo": grpo, "drgrpo": drgrpo, "rloo": rloo, "reinforce_pp": reinforce_pp}


def resolve(advantage: str, scale_by_std: bool) -> AdvantageFn:
    """The estimator a config names. `scale_by_std: false` (the older switch) with `grpo` means Dr.GRPO; the
    config rejects it with the other estimators (AlgorithmSection)."""
    if advantage == "grpo" and not scale_by_std:
        return drgrpo
    return ESTIMATORS[advantage]


def overlong_penalty(length: int, max_len: int, cache_len: int, factor: float = 1.0) -> float:
    """DAPO's soft overlong punishment (Yu et al., 2025, eq. 13): 0 up to max_len - cache_len tokens, then a
    linear ramp to -factor at max_len (and -factor beyond it)."""
    start = max_len - cache_len
    if length <= start:
        return 0.0
    if length > max_len:
        return -factor
    return factor * (start - length) / cache_len
