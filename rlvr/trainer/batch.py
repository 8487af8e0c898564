"""Packing rollouts into padded tensors for the learner, and splitting batches across ranks and micro-batches."""

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

    def to(self, device) -> MicroBatch:
        return MicroBatch(*(t.to(device) for t in (self.input_ids_BL, self.attention_mask_BL,
                                                   self.completion_mask_BT, self.advantages_B)))


def collate(rollouts: list[Rollout], pad_id: int) -> MicroBatch:
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
    return MicroBatch(ids_BL, attn_BL, comp_BL[:, 1:], adv_B)


def shard(items: list, num_shards: int) -> list[list]:
    """Contiguous, near-equal shards (order kept, so results concatenate back in place)."""
    base, extra = divmod(len(items), num_shards)
    out, start = [], 0
    for i in range(num_shards):
        size = base + (1 if i < extra else 0)
        out.append(items[start : start + size])
        start += size
    return out


def chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]
