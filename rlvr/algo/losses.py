"""Policy losses by name: `algorithm.loss` picks one from `LOSSES`, once, when the learner is set up.

A loss sees one micro-batch (`LossInputs`) and returns its share of the global batch's loss plus statistics summed
over the micro-batch's tokens, named `<metric>_sum` (logged as `learner/<metric>`, a per-token mean). It owns its
`Aggregation`: what the global normaliser counts (tokens, sequences) and how the micro-batch's sum is divided by it,
so the learner never switches on `loss_agg`. Adding a loss (GSPO, CISPO, RLOO...) is one registered function:

    @register_loss("my_loss")
    def my_loss(alg: AlgorithmSection) -> PolicyLoss:
        return PolicyLoss(lambda inputs, normalizer: ..., AGGREGATIONS[alg.loss_agg])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from rlvr.algo import grpo
from rlvr.algo.grpo import AGGREGATIONS, Aggregation

if TYPE_CHECKING:
    from rlvr.config import AlgorithmSection


@dataclass(frozen=True)
class LossInputs:
    """One micro-batch, shapes B sequences x T positions (a position scores the next token)."""

    logp_BT: torch.Tensor
    """The policy's logprobs, with gradient."""
    old_logp_BT: torch.Tensor
    """The sampling (old) policy's logprobs, no gradient."""
    advantages_B: torch.Tensor
    mask_BT: torch.Tensor
    """1 on completion tokens."""
    ref_logp_BT: torch.Tensor | None = None
    """The reference model's logprobs (only when algorithm.kl_coef > 0)."""


@dataclass(frozen=True)
class PolicyLoss:
    fn: Callable[[LossInputs, float], tuple[torch.Tensor, dict[str, float]]]
    """(micro-batch, global normaliser) -> (loss to backpropagate, summed statistics incl. `tokens`)."""
    aggregation: Aggregation

    def __call__(self, inputs: LossInputs, normalizer: float) -> tuple[torch.Tensor, dict[str, float]]:
        return self.fn(inputs, normalizer)


LOSSES: dict[str, Callable[[AlgorithmSection], PolicyLoss]] = {}


def register_loss(name: str):
    """Decorator: `factory(algorithm_section) -> PolicyLoss` becomes `algorithm.loss: NAME`."""

    def add(factory: Callable[[AlgorithmSection], PolicyLoss]):
        if name in LOSSES:
            raise ValueError(f"a loss named {name!r} is already registered")
        LOSSES[name] = factory
        return factory

    return add


def build_loss(alg: AlgorithmSection) -> PolicyLoss:
    if alg.loss not in LOSSES:
        raise ValueError(f"algorithm.loss: unknown loss {alg.loss!r} (registered: {', '.join(sorted(LOSSES))})")
    return LOSSES[alg.loss](alg)


@register_loss("grpo")
def clipped_grpo(alg: AlgorithmSection) -> PolicyLoss:
    """PPO-clipped surrogate with optional KL to the reference (grpo.grpo_loss); DAPO's clip-higher via the
    asymmetric clip, token_mean or seq_mean aggregation."""
    cfg = grpo.LossConfig(alg.clip_eps_low, alg.clip_eps_high, alg.kl_coef, alg.kl_estimator, alg.loss_agg)

    def loss(x: LossInputs, normalizer: float) -> tuple[torch.Tensor, dict[str, float]]:
        return grpo.grpo_loss(x.logp_BT, x.old_logp_BT, x.advantages_B, x.mask_BT, cfg, normalizer, x.ref_logp_BT)

    return PolicyLoss(loss, AGGREGATIONS[alg.loss_agg])
