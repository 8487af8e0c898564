"""The reward worker process: runs reward functions in its *main thread*, one sample at a time, under a deadline.

Started by `service.RewardService` as `python -m rlvr.rewards.worker READ_FD WRITE_FD`. Two layers of time limit:
- soft, here: `setitimer` raises `CheckTimeout` in the main thread (signals only reach the main thread, which is why
  math-verify's own `signal.alarm` timeouts fail under Ray's threads and are switched off in `rlvr.rewards.math`);
- hard, in the parent: a check that has not answered by the limit (C code that never returns to the interpreter,
  a function that swallows BaseException) gets its process group killed and replaced.

Messages are pickled tuples over pipes: ("init", dict) -> ("ready", pid) | ("init_error", traceback);
("check", (prompt, completion, reference)) -> ("fn", i) before each function after the first (so the parent knows
whom to blame for a kill), then ("result", RewardResult, rss_bytes). The service runs several of these processes
and gives each one sample at a time, so checks that hang run out their time side by side.
"""

from __future__ import annotations

import asyncio
import ctypes
import inspect
import logging
import math
import os
import resource
import signal
import sys
import threading
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from rlvr.rewards.extract import cut_at_stop
from rlvr.rewards.loader import load_reward_fn
from rlvr.rewards.types import RewardResult, Verdict

log = logging.getLogger("rlvr.rewards.worker")

_CLIP_EXTRACTED, _CLIP_REASON = 200, 1000  # results travel back through a pipe and into logs: keep them small


class CheckTimeout(BaseException):
    """A check ran past its soft deadline. A BaseException so that the `except Exception` around every comparison
    in math-verify (and in most user code) cannot swallow it."""


@dataclass
class RewardFn:
    name: str
    fn: Callable[..., Any]
    weight: float = 1.0
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Limits:
    soft_timeout_s: float
    max_completion_chars: int
    stop: tuple[str, ...] = ()


class RepeatedLog:
    """Logs a message the first time its key is seen; afterwards one short line with the count at the 10th, 100th,
    1,000th... time, so a function that fails on every sample leaves one traceback, not thousands."""

    def __init__(self, logger: logging.Logger):
        self.logger = logger
        self.counts: Counter[str] = Counter()

    def log(self, level: int, key: str, message: str) -> None:
        self.counts[key] += 1
        n = self.counts[key]
        if n == 1:
            self.logger.log(level, "%s", message)
        elif str(n).strip("0") == "1":  # 10, 100, 1000...
            self.logger.log(level, "%s: %d times so far (logged in full the first time)", key, n)


_errors = RepeatedLog(log)


def _raise_timeout(signum: int, frame: Any) -> None:
    raise CheckTimeout()


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise CheckTimeout in the calling (main) thread after `seconds` of wall-clock time."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("deadline() needs the main thread: signals are only delivered there")
    previous = signal.signal(signal.SIGALRM, _raise_timeout)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def failed_result(names: list[str], verdict: Verdict, reason: str, blame: str | None = None) -> RewardResult:
    """The result of a sample no function could score (bad input, timeout, dead worker); `blame`: the function
    that was running, if one was (bad input is no function's failure)."""
    failures = {} if blame is None else {blame: reason}
    return RewardResult(0.0, verdict, reason=reason, components={name: 0.0 for name in names}, failures=failures)


def compose(done: list[tuple[RewardFn, RewardResult]]) -> RewardResult:
    """Weighted sum of the functions' scores; verdict and extracted answer from the first (primary) function,
    unless a function errored or timed out: then that verdict, so a partly-scored sample is never reported as clean.
    A failed function contributes 0 to the score."""
    primary = done[0][1]
    failed = next((r for _, r in done if r.verdict in (Verdict.ERROR, Verdict.TIMEOUT)), None)
    if len(done) == 1:
        reason = primary.reason
    else:
        reason = "; ".join(f"{f.name}: {r.reason}" for f, r in done)
    return RewardResult(
        score=sum(f.weight * r.score for f, r in done),
        verdict=(failed or primary).verdict,
        extracted=None if primary.extracted is None else primary.extracted[:_CLIP_EXTRACTED],
        reason=reason[:_CLIP_REASON],
        components={f.name: r.score for f, r in done},
        failures={f.name: r.reason[:_CLIP_REASON] for f, r in done if r.verdict in (Verdict.ERROR, Verdict.TIMEOUT)},
    )


def input_problem(prompt: Any, completion: Any, reference: Any, max_chars: int) -> str | None:
    """Why a sample cannot be scored at all, or None. Checked once here so every reward function gets clean text."""
    for name, value in (("prompt", prompt), ("completion", completion), ("reference", reference)):
        if not isinstance(value, str):
            return f"{name} is {type(value).__name__}, not str"
    if len(completion) > max_chars:
        return f"completion has {len(completion):,} characters, over the limit of {max_chars:,}"
    if "\x00" in completion:
        return "completion contains a NUL character"
    try:
        completion.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates: bytes decoded with errors="surrogateescape"
        return f"completion is not valid UTF-8 (character {exc.start})"
    return None


def coerce(out: Any, name: str) -> RewardResult:
    """A user function's return value as a RewardResult. A bare number scores as correct when positive."""
    if isinstance(out, bool | int | float):
        out = RewardResult(float(out), Verdict.CORRECT if out > 0 else Verdict.INCORRECT, reason=f"returned {out}")
    if not isinstance(out, RewardResult):
        return RewardResult(0.0, Verdict.ERROR, reason=f"{name} returned {type(out).__name__}, not float/RewardResult")
    if not math.isfinite(out.score):
        return RewardResult(0.0, Verdict.ERROR, reason=f"{name} returned a non-finite score {out.score}")
    return out


async def _await(awaitable: Any) -> Any:
    return await awaitable


def call_reward(fn: RewardFn, prompt: str, completion: str, reference: str) -> RewardResult:
    """Run one reward function on one sample; any exception it raises becomes an `error` verdict."""
    try:
        out = fn.fn(prompt, completion, reference, **fn.kwargs)
        if inspect.isawaitable(out):
            out = asyncio.run(_await(out))
        return coerce(out, fn.name)
    # The worker boundary: whatever user code raises is this sample's `error` verdict, with the traceback logged;
    # CheckTimeout (a BaseException) passes through to the caller.
    except Exception as exc:  # noqa: BLE001
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno} in {tb[-1].name}" if tb else ""
        key = f"reward function {fn.name} raised {type(exc).__name__}{where}"
        _errors.log(logging.ERROR, key, f"{key} on a sample:\n{traceback.format_exc()}")
        return RewardResult(0.0, Verdict.ERROR, reason=f"{fn.name} raised {type(exc).__name__}: {exc}{where}")


def score_one(fns: list[RewardFn], sample: tuple, limits: Limits,
              on_function: Callable[[int], None] | None = None) -> RewardResult:
    """All reward functions on one sample, within one soft deadline for the whole sample. `on_function(i)` is
    called before function i (i >= 1) runs."""
    prompt, completion, reference = sample
    problem = input_problem(prompt, completion, reference, limits.max_completion_chars)
    if problem:
        return failed_result([f.name for f in fns], Verdict.ERROR, problem)
    completion = cut_at_stop(completion, limits.stop)
    done: list[tuple[RewardFn, RewardResult]] = []
    try:
        with deadline(limits.soft_timeout_s):
            for i, fn in enumerate(fns):
                if i and on_function is not None:
                    on_function(i)
                done.append((fn, call_reward(fn, prompt, completion, reference)))
    except CheckTimeout:
        ran = len(done)  # fns[ran] was running; the ones after it never ran and are not to blame
        reason = f"ran past the {limits.soft_timeout_s:.3g} s limit"
        done += [(fn, RewardResult(0.0, Verdict.TIMEOUT, reason=reason)) for fn in fns[ran:]]
        result = compose(done)
        not_run = {f.name for f in fns[ran + 1 :]}
        result.failures = {name: why for name, why in result.failures.items() if name not in not_run}
        return result
    return compose(done)


def _rss_bytes() -> int:
    # Peak resident size: one system call per check (reading /proc/self/statm each time cost a third of a fast
    # check); a process that once grew past the recycle limit is replaced either way.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10


def _die_with_parent() -> None:
    # A worker stuck in C code would outlive a killed Ray actor (it is in its own session); PR_SET_PDEATHSIG = 1.
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
        if os.getppid() == 1:
            os._exit(1)


def serve(recv: Connection, send: Connection, fns: list[RewardFn], limits: Limits) -> None:
    def running(i: int) -> None:
        send.send(("fn", i))

    while True:
        try:
            kind, payload = recv.recv()
        except EOFError:  # the service closed the pipe or died
            return
        if kind == "close":
            return
        result = score_one(fns, payload, limits, running)
        send.send(("result", result, _rss_bytes()))


def main(argv: list[str]) -> None:
    _die_with_parent()
    logging.basicConfig(level=logging.INFO, format=f"[reward worker {os.getpid()}] %(levelname)s %(message)s")
    recv, send = Connection(int(argv[0]), writable=False), Connection(int(argv[1]), readable=False)
    _, init = recv.recv()
    if init["memory_limit_mb"]:
        limit = init["memory_limit_mb"] << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))  # a runaway allocation is a MemoryError, not OOM
    try:
        fns = [RewardFn(name, load_reward_fn(path), weight, kwargs) for name, path, weight, kwargs in init["functions"]]
    # Reported to the parent, which raises it: the pool cannot serve without its functions.
    except Exception:  # noqa: BLE001
        send.send(("init_error", traceback.format_exc()))
        return
    send.send(("ready", os.getpid()))
    serve(recv, send, fns, Limits(init["soft_timeout_s"], init["max_completion_chars"], tuple(init["stop"])))


if __name__ == "__main__":
    main(sys.argv[1:])
