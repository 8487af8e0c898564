"""Waiting on actors: every wait has a timeout, and a timeout or death names the actor that did not answer."""

from __future__ import annotations

import ray


class ActorTimeout(RuntimeError):
    pass


def gather(refs: list, names: list[str], timeout_s: float) -> list:
    """ray.get on several calls at once; raises naming the first actor that did not answer in time."""
    ready, pending = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
    if pending:
        late = [name for ref, name in zip(refs, names) if ref in set(pending)]
        raise ActorTimeout(f"{', '.join(late)} did not answer within {timeout_s:.0f} s")
    return ray.get(refs)
