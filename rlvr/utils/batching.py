"""Splitting batches across ranks, workers and micro-batches: plain lists, used by the learner and the actor
groups alike."""

from __future__ import annotations


def shard(items: list, num_shards: int) -> list[list]:
    """Contiguous, near-equal shards (order kept, so results concatenate back in place)."""
    base, extra = divmod(len(items), num_shards)
    out, start = [], 0
    for i in range(num_shards):
        size = base + (1 if i < extra else 0)
        out.append(items[start : start + size])
        start += size
    return out


def shard_minibatches(items: list, num_shards: int, mini_batches: int) -> list[list]:
    """Each rank's list is its share of global mini-batch 0, then of mini-batch 1, ...: so a rank's m-th local
    mini-batch is part of the same global mini-batch whatever the number of ranks."""
    per_rank: list[list] = [[] for _ in range(num_shards)]
    for mini in chunks(items, max(1, len(items) // mini_batches)):
        for rank, part in enumerate(shard(mini, num_shards)):
            per_rank[rank].extend(part)
    return per_rank


def chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]
