"""The reward service: scores batches in checker processes that can always be killed, so it never hangs.

Plain Python (no Ray): `rlvr.actors.reward_pool` wraps it as a Ray actor, one per reward worker.

Each checker process (`rlvr.rewards.worker`) scores the samples it is sent in order and arms a soft deadline at
`SOFT_FRACTION * timeout_s` per sample in its main thread; the service waits at most `timeout_s` for each result
and otherwise kills that process's group, records `timeout` for the sample, hands the samples queued behind it to
other processes and starts a fresh one. A process that dies
(segfault, `os._exit`, out of memory) costs its sample an `error` verdict the same way. Every sample gets a
verdict; `score` raises only if a checker process cannot be started at all.

One process scores a batch of fast checks. When every process is busy and one check has run for `GROW_AFTER` of
the limit, more are started, up to `rewards.processes`, so a batch of N checks that hang costs about one limit
(plus a process start) instead of N limits, for N up to `rewards.processes`. A process gets one sample at a time at
the start of a batch and more queued (up to `MAX_DEPTH`, doubling with each fast answer) once its checks prove
fast, so fast batches keep the throughput of one message stream and slow ones stay one sample per process.

Verdicts of composed functions (see `worker.compose`): the first function is primary (its verdict and extracted
answer), unless any function errored or timed out; the score is the weighted sum of the functions' scores.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from rlvr.config import RewardsSection
from rlvr.rewards.types import RewardResult, Sample, Verdict
from rlvr.rewards.worker import RepeatedLog, failed_result

log = logging.getLogger(__name__)

SOFT_FRACTION = 0.8
"""The worker's own deadline, as a fraction of the hard limit: most overruns end cleanly, without a kill."""

GROW_AFTER = 0.2
"""Start more checker processes once a check has been running for this fraction of the limit and others wait."""
FAST = 0.01
"""A check answered within this fraction of the limit lets its process take more samples queued."""
MAX_DEPTH = 32
QUEUED_BYTES = 32 << 10
"""Samples queued behind a running one stay under this many bytes, less than a pipe holds (64 KiB on Linux): a send
must never block, or a check stuck in C code could not be killed at its limit while the service waits to write."""


def component_names(cfg: RewardsSection) -> list[str]:
    """`components` keys: the function's path, with `#2`, `#3` for repeats of the same path."""
    names: list[str] = []
    for spec in cfg.functions:
        repeats = sum(1 for n in names if n == spec.path or n.startswith(spec.path + "#"))
        names.append(spec.path if repeats == 0 else f"{spec.path}#{repeats + 1}")
    return names


def verdict_fractions(results: Sequence[RewardResult]) -> dict[str, float]:
    """Fraction of samples per verdict, every verdict present (zeros too), as step metrics."""
    n = len(results)
    return {f"reward/verdict_{v.value}": sum(r.verdict == v for r in results) / n if n else 0.0 for v in Verdict}


def _worker_env() -> dict[str, str]:
    # The worker must import what this process imports: rlvr, and user modules on sys.path (a Ray job's
    # --working-dir is the cwd and on sys.path of the actor, not necessarily on PYTHONPATH).
    paths = [os.getcwd()] + [p for p in sys.path if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


class _WorkerProcess:
    """One `python -m rlvr.rewards.worker` child in its own process group, talked to through two pipes. `queue`: the
    batch indices sent to it and not answered yet, in order; the first is running since `running_since`."""

    def __init__(self, init: dict[str, Any], startup_timeout_s: float):
        child_read, parent_write = os.pipe()
        parent_read, child_write = os.pipe()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rlvr.rewards.worker", str(child_read), str(child_write)],
            pass_fds=(child_read, child_write),
            stdin=subprocess.DEVNULL,
            env=_worker_env(),
            start_new_session=True,  # its own process group, so a kill also takes anything it spawned
        )
        os.close(child_read)
        os.close(child_write)
        self.conn = Connection(parent_read, writable=False)
        self._send = Connection(parent_write, readable=False)
        self._send.send(("init", init))
        self.ready = False
        self.start_deadline = time.monotonic() + startup_timeout_s
        self.queue: deque[int] = deque()
        self.sizes: deque[int] = deque()  # bytes of each queued message
        self.running_since = 0.0
        self.depth = 1
        self.fn = 0  # index of the reward function running now (the worker says when it moves on)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def started(self, reply: tuple | None) -> None:
        """Take the start-up reply; raises if the worker cannot serve."""
        if reply is not None and reply[0] == "ready":
            self.ready = True
            return
        self.kill()
        detail = "no answer" if reply is None else reply[1].strip().splitlines()[-1]
        raise RuntimeError(f"reward worker did not start: {detail}")

    def wait_ready(self) -> None:
        try:
            self.started(self.recv(max(0.0, self.start_deadline - time.monotonic())))
        except (EOFError, OSError):
            raise RuntimeError(f"reward worker exited while starting ({self.describe_exit()})") from None

    def can_take(self, size: int) -> bool:
        """An idle process reads as it is sent to; behind a running check, only what the pipe holds unread."""
        if not self.queue:
            return True
        return len(self.queue) < self.depth and sum(self.sizes) - self.sizes[0] + size <= QUEUED_BYTES

    def check(self, index: int, message: bytes) -> None:
        self._send.send_bytes(message)
        self.queue.append(index)
        self.sizes.append(len(message))
        if len(self.queue) == 1:
            self.running_since, self.fn = time.monotonic(), 0

    def answered(self, fast: bool) -> tuple[int, float]:
        """The index whose result just came and how long it ran; the next queued sample starts now."""
        now = time.monotonic()
        index, elapsed = self.queue.popleft(), now - self.running_since
        self.sizes.popleft()
        self.running_since, self.fn = now, 0
        self.depth = min(2 * self.depth, MAX_DEPTH) if fast else 1
        return index, elapsed

    def recv(self, timeout_s: float) -> tuple | None:
        """The next message, or None if none arrives in time; EOFError/OSError if the worker died."""
        if not self.conn.poll(timeout_s):
            return None
        return self.conn.recv()

    def describe_exit(self) -> str:
        try:
            code = self.proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return "it closed its pipe but is still running"
        return f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10.0)
        except subprocess.TimeoutExpired:  # uninterruptible sleep in the kernel; the kill stays pending
            log.error("reward worker %d did not exit 10 s after SIGKILL", self.proc.pid)
        self._send.close()
        self.conn.close()

    def close(self) -> None:
        try:
            self._send.send(("close", None))
            self.proc.wait(timeout=5.0)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


class RewardService:
    """Scores batches of samples with the configured reward functions, in up to `cfg.processes` killable checker
    processes."""

    def __init__(
        self,
        cfg: RewardsSection,
        *,
        stop: Sequence[str] = (),
        max_completion_chars: int = 200_000,
        memory_limit_mb: int | None = 2048,
        recycle_rss_mb: int = 1024,
        startup_timeout_s: float = 60.0,
    ):
        """`stop`: cut every completion at these before any function sees it (math_reward also cuts at its own
        defaults). `max_completion_chars`: longer completions get `error`. `memory_limit_mb`: each checker's
        address space limit (None: none). `recycle_rss_mb`: restart a checker once it is this large."""
        self.cfg = cfg
        self.timeout_s = cfg.timeout_s
        self.names = component_names(cfg)
        self._recycle_bytes = recycle_rss_mb << 20
        self._startup_timeout_s = startup_timeout_s
        self._init = {
            "functions": [(n, f.path, f.weight, f.kwargs) for n, f in zip(self.names, cfg.functions)],
            "soft_timeout_s": SOFT_FRACTION * cfg.timeout_s,
            "max_completion_chars": max_completion_chars,
            "stop": list(stop),
            "memory_limit_mb": memory_limit_mb,
        }
        self._log = RepeatedLog(log)
        self.restarts = 0
        """Checker processes replaced after a kill, a death or outgrowing `recycle_rss_mb`."""
        self.peak_in_flight = 0
        """The most checks the last `score` call had running at the same time (each in its own process)."""
        self._workers: list[_WorkerProcess] = []
        self._messages: dict[int, bytes] = {}  # this batch's samples, pickled once each
        self._spawn().wait_ready()  # a function that cannot be imported fails here, loudly

    def worker_pid(self) -> int:
        """The first ready checker process (started if there is none)."""
        return self._ready_worker().pid

    def worker_pids(self) -> list[int]:
        """Every checker process, ready or starting."""
        return [w.pid for w in self._workers]

    def start_all(self) -> None:
        """Start checker processes up to `rewards.processes` and wait until each is ready (a warm pool, as after
        the first slow batch; for benchmarks and tests)."""
        while len(self._workers) < self.cfg.processes:
            self._spawn()
        for worker in self._workers:
            if not worker.ready:
                worker.wait_ready()

    def score(self, samples: list[Sample]) -> list[RewardResult]:
        """One result per sample, in order; never raises for a sample's content or a stuck/crashed check."""
        payload = [(s.prompt, s.completion, s.reference) for s in samples]
        results: list[RewardResult | None] = [None] * len(payload)
        pending = deque(range(len(payload)))
        self._messages: dict[int, bytes] = {}
        self.peak_in_flight = 0
        for worker in self._workers:
            worker.depth = 1  # earlier batches' speed says nothing about this one's
        while pending or self._busy():
            self._dispatch(pending, payload)
            self._grow(pending)
            self._wait_and_collect(results, pending)
        self._messages = {}
        assert all(r is not None for r in results)
        return results  # type: ignore[return-value]

    def close(self) -> None:
        for worker in self._workers:
            worker.close()
        self._workers = []

    def __enter__(self) -> RewardService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _spawn(self) -> _WorkerProcess:
        worker = _WorkerProcess(self._init, self._startup_timeout_s)
        self._workers.append(worker)
        return worker

    def _retire(self, worker: _WorkerProcess, pending: deque | None = None, requeue_all: bool = False) -> None:
        """Kill a checker and start its replacement (it serves once it says it is ready); the samples queued behind
        its running one (all of its samples with `requeue_all`) go back to `pending`."""
        worker.kill()
        if pending is not None:
            pending.extendleft(reversed(list(worker.queue)[0 if requeue_all else 1 :]))
        self._workers.remove(worker)
        self.restarts += 1
        self._spawn()

    def _busy(self) -> list[_WorkerProcess]:
        return [w for w in self._workers if w.queue]

    def _ready_worker(self) -> _WorkerProcess:
        for worker in list(self._workers):
            if worker.ready and worker.proc.poll() is not None:  # died while idle
                self._retire(worker)
        for worker in self._workers:
            if worker.ready:
                return worker
        starting = next((w for w in self._workers if not w.ready), None) or self._spawn()
        starting.wait_ready()
        return starting

    def _dispatch(self, pending: deque, payload: list[tuple]) -> None:
        for worker in list(self._workers):
            while pending and worker.ready:
                index = pending[0]
                if index not in self._messages:
                    self._messages[index] = pickle.dumps(("check", payload[index]), pickle.HIGHEST_PROTOCOL)
                if not worker.can_take(len(self._messages[index])):
                    break
                pending.popleft()
                try:
                    worker.check(index, self._messages[index])
                except OSError:  # it died between checks: not these samples' fault, so again on another process
                    pending.appendleft(index)
                    self._retire(worker, pending, requeue_all=True)
                    break
        if pending and not self._workers:
            self._spawn()
        self.peak_in_flight = max(self.peak_in_flight, len(self._busy()))

    def _grow(self, pending: deque) -> None:
        # Only when checks are slow: a batch of fast checks is scored by one process without start-up costs.
        busy = self._busy()
        idle = [w for w in self._workers if not w.queue]
        if not pending or len(idle) >= len(pending) or len(self._workers) >= self.cfg.processes:
            return
        if not busy or time.monotonic() - min(w.running_since for w in busy) < GROW_AFTER * self.timeout_s:
            return
        for _ in range(min(len(pending) - len(idle), self.cfg.processes - len(self._workers))):
            self._spawn()

    def _next_event(self) -> float:
        """Seconds until a deadline passes or it is time to grow the pool."""
        times = [w.running_since + self.timeout_s for w in self._busy()]
        times += [w.start_deadline for w in self._workers if not w.ready]
        times += [w.running_since + GROW_AFTER * self.timeout_s for w in self._busy()]
        now = time.monotonic()
        future = [t - now for t in times if t > now]
        return min(future, default=0.0)

    def _wait_and_collect(self, results: list[RewardResult | None], pending: deque) -> None:
        watched = {w.conn: w for w in self._workers if w.queue or not w.ready}
        for conn in wait(list(watched), timeout=self._next_event()):
            worker = watched[conn]
            self._receive(worker, results, pending)
            # drain what else has arrived: fast checks answer faster than one wait() per message
            while worker in self._workers and worker.queue and worker.ready and conn.poll(0):
                self._receive(worker, results, pending)
        now = time.monotonic()
        for worker in list(self._workers):
            if worker.queue and now >= worker.running_since + self.timeout_s:
                reason = f"killed: no answer within the {self.timeout_s:.3g} s hard limit"
                results[worker.queue[0]] = self._failed(worker, Verdict.TIMEOUT, reason)
                self._retire(worker, pending)
            elif not worker.ready and now >= worker.start_deadline:
                worker.started(None)  # raises: no checker can be started

    def _receive(self, worker: _WorkerProcess, results: list[RewardResult | None], pending: deque) -> None:
        try:
            message = worker.conn.recv()
        except (EOFError, OSError):
            if not worker.ready:
                raise RuntimeError(f"reward worker exited while starting ({worker.describe_exit()})") from None
            reason = f"reward worker died ({worker.describe_exit()})"
            results[worker.queue[0]] = self._failed(worker, Verdict.ERROR, reason)
            self._retire(worker, pending)
            return
        if not worker.ready:
            worker.started(message)
        elif message[0] == "fn":
            worker.fn = message[1]
        else:
            _, result, rss = message
            index, result.elapsed_s = worker.answered(time.monotonic() - worker.running_since < FAST * self.timeout_s)
            results[index] = result
            if rss > self._recycle_bytes:
                self._retire(worker, pending, requeue_all=True)  # none of its queued samples has started

    def _failed(self, worker: _WorkerProcess, verdict: Verdict, reason: str) -> RewardResult:
        blame = self.names[worker.fn]
        self._log.log(logging.WARNING, f"reward function {blame}: {verdict.value} ({reason.partition(' (')[0]})",
                      f"reward sample {verdict.value} in {blame}: {reason}")
        result = failed_result(self.names, verdict, reason, blame)
        result.elapsed_s = time.monotonic() - worker.running_since
        return result
