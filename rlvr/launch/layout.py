"""GPU layouts: where a run's actors go on the cluster's nodes, and who is which rank of the weight broadcast.

A check that each bundle fits some node and that the totals fit misses
layouts whose totals fit but whose bundles do not fit *together*: two 2-GPU vLLM engines (tensor_parallel_size 2)
on nodes of 3 and 1 GPUs, or a STRICT_SPREAD run with more actors than nodes. Ray would leave such a placement
group pending until `cluster.actor_timeout_s`; `assign_bundles` (called by `cluster.check_packing`) finds that out at once, by a small exact search
(tens of bundles, a few nodes), so the run stops with one line before any actor starts.

`broadcast_layout` names each rank of the NCCL group `weight_sync: nccl` forms (learner rank 0, then every worker
of every engine) from the same `broadcast_ranks` the actors use to join it.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlvr.config import ConfigError, RunConfig
from rlvr.rollout.weight_sync import broadcast_ranks

Resources = dict[str, float]

_EPS = 1e-9


def _fits(need: Resources, free: Resources) -> bool:
    return all(free.get(k, 0.0) + _EPS >= v for k, v in need.items())


class SearchTooLarge(Exception):
    """The packing search gave up (`max_steps`): the layout is left to Ray's own placement."""


def assign_bundles(bundles: list[Resources], nodes: list[Resources], strategy: str = "PACK",
                   max_steps: int = 200_000) -> list[int] | None:
    """A node index per bundle such that every node holds its bundles, or None when there is no such assignment.

    PACK and SPREAD are preferences to Ray (any assignment will do); STRICT_PACK puts every bundle on one node,
    STRICT_SPREAD each on a node of its own. Bundles are tried largest first; a bundle equal to the previous one
    never goes to an earlier node than it did, and of nodes left in the same state only the first is tried (equal
    bundles, and equal nodes, are interchangeable): the search stays small. Raises SearchTooLarge past max_steps.
    """
    if not bundles:
        return []
    if strategy == "STRICT_PACK":
        whole: Resources = {}
        for b in bundles:
            for k, v in b.items():
                whole[k] = whole.get(k, 0.0) + v
        node = next((i for i, n in enumerate(nodes) if _fits(whole, n)), None)
        return None if node is None else [node] * len(bundles)
    # most GPUs first; equal bundles sort next to each other (the item tuple breaks ties)
    order = sorted(range(len(bundles)), key=lambda i: (-bundles[i].get("GPU", 0.0), -sum(bundles[i].values()),
                                                       sorted(bundles[i].items())))
    free = [dict(n) for n in nodes]
    count = [0] * len(nodes)  # bundles on each node
    placed: dict[int, int] = {}
    steps = 0

    def state(n: int) -> tuple:
        return count[n] > 0, tuple(sorted((k, round(v, 6)) for k, v in free[n].items()))

    def place(pos: int) -> bool:
        nonlocal steps
        if pos == len(order):
            return True
        steps += 1
        if steps > max_steps:
            raise SearchTooLarge(f"more than {max_steps} steps")
        i = order[pos]
        prev = order[pos - 1] if pos else None
        start = placed[prev] if prev is not None and bundles[prev] == bundles[i] else 0
        tried: set[tuple] = set()
        for n in range(start, len(nodes)):
            if (strategy == "STRICT_SPREAD" and count[n]) or not _fits(bundles[i], free[n]) or state(n) in tried:
                continue
            tried.add(state(n))
            for k, v in bundles[i].items():
                free[n][k] = free[n].get(k, 0.0) - v
            count[n], placed[i] = count[n] + 1, n
            if place(pos + 1):
                return True
            for k, v in bundles[i].items():
                free[n][k] += v
            count[n] -= 1
            del placed[i]
        return False

    return [placed[i] for i in range(len(bundles))] if place(0) else None


def check_tensor_parallel(cfg: RunConfig, nodes: list[Resources]) -> None:
    """A tensor-parallel engine's workers are processes of one rollout actor, so all its GPUs are on one node."""
    tp = cfg.rollout.tensor_parallel_size
    if tp > 1 and not any(n.get("GPU", 0.0) + _EPS >= tp for n in nodes):
        most = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
        raise ConfigError(f"impossible layout: rollout.tensor_parallel_size={tp} needs {tp} GPUs on one node for "
                          f"each engine, but the cluster's nodes have at most {most:g} GPUs each")


@dataclass(frozen=True)
class BroadcastRank:
    rank: int
    role: str
    """`learner` (rank 0 of the learners) or `rollout`."""
    actor: int
    """The rollout actor (engine) index; 0 for the learner."""
    tp_rank: int
    """The engine worker's tensor-parallel rank (its shard of the weights)."""


def broadcast_layout(cfg: RunConfig) -> list[BroadcastRank]:
    """Every rank of the `weight_sync: nccl` group, in rank order: the ranks the engines join with."""
    tp = cfg.rollout.tensor_parallel_size
    world, offsets = broadcast_ranks([tp] * cfg.rollout.num_actors)
    ranks = [BroadcastRank(0, "learner", 0, 0)]
    for engine, offset in enumerate(offsets):
        ranks += [BroadcastRank(offset + t, "rollout", engine, t) for t in range(tp)]
    assert len(ranks) == world
    return ranks


def check_tensor_parallel_model(cfg: RunConfig, model_path: str) -> None:
    """vLLM splits the attention heads across an engine's TP workers: the heads must divide (SmolLM2-135M's 9 do
    not divide by 2; Qwen2.5-0.5B's 14 do). Read from config.json, before any engine starts."""
    import json
    from pathlib import Path

    tp = cfg.rollout.tensor_parallel_size
    if tp == 1:
        return
    heads = json.loads((Path(model_path) / "config.json").read_text()).get("num_attention_heads")
    if heads and heads % tp:
        raise ConfigError(f"rollout.tensor_parallel_size={tp} does not divide the model's {heads} attention heads "
                          f"({model_path}): vLLM gives each TP worker an equal share of them")
