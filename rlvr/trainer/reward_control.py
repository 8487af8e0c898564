"""Control-arm rewards (`algorithm.reward_control`): rewards with the batch's mean but no information about which
completion earned them, for a run that trains on the same samples for the same steps as the real one. A gain the
real arm shows and the control does not is then due to the reward's signal, not to the updates themselves (format
drift, entropy changes, learning-rate effects); random-reward studies found such spurious gains at small scale.

Pure functions on (groups, samples) tensors: `rewards_BG` B prompts by G samples.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

Control = Callable[[torch.Tensor], torch.Tensor]


def shuffled_rewards(rewards_BG: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The batch's rewards permuted across all B*G samples: the same multiset (so the same mean, exactly), each
    landing on a random completion of a random prompt."""
    flat = rewards_BG.reshape(-1)
    return flat[torch.randperm(flat.numel(), generator=generator)].reshape(rewards_BG.shape)


def random_rewards(rewards_BG: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each reward drawn with replacement from the batch's rewards (i.i.d., so groups get a random mix and the
    batch mean matches in expectation)."""
    flat = rewards_BG.reshape(-1)
    picks = torch.randint(0, flat.numel(), (flat.numel(),), generator=generator)
    return flat[picks].reshape(rewards_BG.shape)


def make_control(mode: Literal["none", "shuffle", "random"], seed: int, step: int) -> Control | None:
    """The variant for one step, chosen once; its randomness depends only on (seed, step), so a resumed run
    draws the same control rewards."""
    if mode == "none":
        return None
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
    fn = shuffled_rewards if mode == "shuffle" else random_rewards
    return lambda rewards_BG: fn(rewards_BG, generator)
