"""Packing rollouts into padded tensors for the learner (splitting batches: rlvr/utils/batching.py)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlvr.rollout.base import Rollout


@dataclass
class MicroBatch:
    input_ids_BL: torch.Tensor
    attention_mask_BL: torch.Tensor
    completion_mask_BT: torch.Tensor
    """T = L - 1: position t scores token t+1 (the logits at t predict it)."""
    advantages_B: torch.Tensor
    window_start: int = 0
    """First position whose logits score a completion token in any row: the learner computes logits (and the
    vocabulary-sized softmax) only from here on, not over the prompts."""

    rollout_logprobs_BT: torch.Tensor | None = None
    """The rollout engine's logprob of each completion token, aligned like completion_mask_BT (0 elsewhere);
    only when asked for (rollout.overlap uses them as the old policy's)."""

    def to(self, device) -> MicroBatch:
        tensors = (self.input_ids_BL, self.attention_mask_BL, self.completion_mask_BT, self.advantages_B)
        rollout_lp = None if self.rollout_logprobs_BT is None else self.rollout_logprobs_BT.to(device)
        return MicroBatch(*(t.to(device) for t in tensors), window_start=self.window_start,
                          rollout_logprobs_BT=rollout_lp)


def collate(rollouts: list[Rollout], pad_id: int, rollout_logprobs: bool = False) -> MicroBatch:
    """Right-padded prompt+completion rows with a mask over the completion tokens."""
    L = max(len(r.prompt_ids) + len(r.completion_ids) for r in rollouts)
    B = len(rollouts)
    ids_BL = torch.full((B, L), pad_id, dtype=torch.long)
    attn_BL = torch.zeros((B, L), dtype=torch.long)
    comp_BL = torch.zeros((B, L), dtype=torch.bool)
    for row, r in enumerate(rollouts):
        seq = r.prompt_ids + r.completion_ids
        ids_BL[row, : len(seq)] = torch.tensor(seq)
        attn_BL[row, : len(seq)] = 1
        comp_BL[row, len(r.prompt_ids) : len(seq)] = True
    adv_B = torch.tensor([r.advantage for r in rollouts], dtype=torch.float32)
    lp_BT = _rollout_logprobs(rollouts, L - 1) if rollout_logprobs else None
    return MicroBatch(ids_BL, attn_BL, comp_BL[:, 1:], adv_B, min(len(r.prompt_ids) for r in rollouts) - 1, lp_BT)


def _rollout_logprobs(rollouts: list[Rollout], T: int) -> torch.Tensor:
    lp_BT = torch.zeros((len(rollouts), T), dtype=torch.float32)
    for row, r in enumerate(rollouts):
        if len(r.logprobs) != len(r.completion_ids):
            raise ValueError(f"rollout {row} has {len(r.logprobs)} logprobs for {len(r.completion_ids)} tokens "
                             "(the engine was not asked for logprobs?)")
        start = len(r.prompt_ids) - 1  # position t scores token t+1: the first completion token is scored here
        lp_BT[row, start : start + len(r.logprobs)] = torch.tensor(r.logprobs)
    return lp_BT
