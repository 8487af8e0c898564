"""Where a GRPO update takes the old (sampling) policy's logprobs from: one object, chosen once at learner setup.

- `OnPolicy`: one optimizer step per batch of fresh samples. The old policy *is* the current one, so
  ratio = exp(logp - logp.detach()) is 1 with the right gradient, and no extra forward pass is needed.
- `Recomputed`: several optimizer steps per batch (algorithm.mini_batches > 1): the current weights' logprobs,
  computed once before the first step.
- `EngineLogprobs`: overlapped rollouts (rollout.overlap) were sampled by the weights before the last update;
  the engine's own logprobs stand for them.
- `PreviousWeights`: overlapped, with rollout.overlap_old_logprobs=learner: a copy of those weights kept on the
  learner recomputes them, then takes the current weights for the next batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from rlvr.learner.batch import MicroBatch
    from rlvr.rollout.base import Rollout

LogprobsFn = Callable[[torch.nn.Module, "list[Rollout]"], "list[torch.Tensor]"]
"""(model, rollouts) -> one [B, T] tensor per micro-batch, in order (Learner._logprobs)."""


class OldLogprobs:
    engine_logprobs = False
    """True: micro-batches must carry the rollouts' engine logprobs (collate(..., rollout_logprobs=True))."""

    def start(self, rollouts: list[Rollout]) -> None:
        """Once per batch, before its first optimizer step."""

    def get(self, k: int, mb: MicroBatch, logp_BT: torch.Tensor) -> torch.Tensor:
        """The old logprobs of micro-batch `k` of the batch (`logp_BT`: the current policy's, with grad)."""
        raise NotImplementedError


class OnPolicy(OldLogprobs):
    def get(self, k: int, mb: MicroBatch, logp_BT: torch.Tensor) -> torch.Tensor:
        return logp_BT.detach()


class EngineLogprobs(OldLogprobs):
    engine_logprobs = True

    def get(self, k: int, mb: MicroBatch, logp_BT: torch.Tensor) -> torch.Tensor:
        return mb.rollout_logprobs_BT[:, mb.window_start :]


class Recomputed(OldLogprobs):
    def __init__(self, logprobs: LogprobsFn, model: torch.nn.Module):
        self.logprobs, self.model = logprobs, model
        self.old: list[torch.Tensor] = []

    def start(self, rollouts: list[Rollout]) -> None:
        self.old = self.logprobs(self.model, rollouts)

    def get(self, k: int, mb: MicroBatch, logp_BT: torch.Tensor) -> torch.Tensor:
        return self.old[k]


class PreviousWeights(Recomputed):
    """`model` is the copy of the weights before the last update; `current` the module being trained."""

    def __init__(self, logprobs: LogprobsFn, model: torch.nn.Module, current: torch.nn.Module):
        super().__init__(logprobs, model)
        self.current = current

    def start(self, rollouts: list[Rollout]) -> None:
        super().start(rollouts)
        self._keep_current_weights()

    @torch.no_grad()
    def _keep_current_weights(self) -> None:
        """model <- the weights about to be updated: the policy that samples the next overlapped batch."""
        for kept, current in zip(self.model.parameters(), self.current.parameters(), strict=True):
            kept.copy_(current)
