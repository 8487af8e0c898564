"""Waiting on actors, the one way every worker group does it: every wait has a timeout, a watchdog names the actors still running while it waits, and a
timeout or a death names the actor that did not answer.

A death is reported as soon as it is seen, not when the slowest call returns: when a learner rank dies, the other
ranks sit in a collective that will never finish, and waiting for them would turn a crash into a hang.
"""

from __future__ import annotations

import logging
import time

import ray
from ray.exceptions import RayActorError

from rlvr.utils.errors import RunStopped

log = logging.getLogger("rlvr")


class ActorFailure(RunStopped):
    """An actor stopped answering or died; `name` is the one that did."""


class ActorTimeout(ActorFailure):
    def __init__(self, message: str, name: str = ""):
        super().__init__(message, name)


class ActorDied(ActorFailure):
    pass


def watchdog_interval(timeout_s: float) -> float:
    """How often a long wait says what it is waiting for: a quarter of the timeout, at most a minute."""
    return min(60.0, max(timeout_s / 4, 1.0))


def wait_all(refs: list, names: list[str], timeout_s: float, what: str = "call", raise_on_death: bool = True
             ) -> None:
    """Return when every call has finished; raise at once on the first actor death (unless `raise_on_death` is
    False: then wait for the others too), or at the deadline.

    While waiting, every `watchdog_interval` the names of the actors still running are logged, so a stuck run
    says who it is stuck on long before the timeout fires.
    """
    start = time.monotonic()
    deadline, next_bark = start + timeout_s, start + watchdog_interval(timeout_s)
    pending = list(refs)
    while pending:
        now = time.monotonic()
        if now >= deadline:
            late = _names_of(pending, refs, names)
            raise ActorTimeout(f"{', '.join(late)} did not answer within {timeout_s:.0f} s ({what})", late[0])
        if now >= next_bark:
            log.warning("watchdog: still waiting %.0f s for %s (%s; timeout %.0f s)", now - start,
                        ", ".join(_names_of(pending, refs, names)), what, timeout_s)
            next_bark = now + watchdog_interval(timeout_s)
        ready, pending = ray.wait(pending, num_returns=1, timeout=max(0.0, min(deadline, next_bark) - now))
        for ref in ready:
            if raise_on_death:
                _raise_if_died(ref, refs, names, what)


def _names_of(subset: list, refs: list, names: list[str]) -> list[str]:
    ids = {ref.hex() for ref in subset}
    return [name for ref, name in zip(refs, names) if ref.hex() in ids]


def _raise_if_died(ref, refs: list, names: list[str], what: str) -> None:
    try:
        ray.get(ref, timeout=0)
    except RayActorError as exc:
        name = _names_of([ref], refs, names)[0]
        raise ActorDied(f"{name} died ({type(exc).__name__}) during {what}", name) from exc


def outcomes(refs: list, names: list[str], timeout_s: float, what: str = "call") -> list:
    """Like `gather`, for callers that restart dead actors: every call is waited for (same watchdog and deadline),
    and a call whose actor died holds its `ActorDied` in its slot instead of raising."""
    wait_all(refs, names, timeout_s, what, raise_on_death=False)
    out: list = []
    for ref, name in zip(refs, names):
        try:
            out.append(ray.get(ref, timeout=0))
        except RayActorError as exc:
            died = ActorDied(f"{name} died ({type(exc).__name__}) during {what}", name)
            died.__cause__ = exc
            out.append(died)
    return out


def gather(refs: list, names: list[str], timeout_s: float, what: str = "call") -> list:
    """ray.get on several calls at once, in order; raises `ActorDied`/`ActorTimeout` naming the actor."""
    wait_all(refs, names, timeout_s, what)
    return ray.get(refs)
