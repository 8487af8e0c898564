"""The reward service: scores batches in a worker process that can always be killed, so it never hangs.

Plain Python (no Ray): `rlvr.actors.reward_pool` wraps it as a Ray actor, one per reward worker.

Per sample, the worker (`rlvr.rewards.worker`) arms a soft deadline at `SOFT_FRACTION * timeout_s` in its main
thread; the service waits at most `timeout_s` for each result and otherwise kills the worker's process group,
records `timeout` for that sample, starts a fresh worker and carries on with the rest of the batch. A worker that
dies (segfault, `os._exit`, out of memory) costs its sample an `error` verdict the same way. Every sample gets a
verdict; `score` raises only if a worker cannot be started at all.

Verdicts of composed functions (see `worker.compose`): the first function is primary (its verdict and extracted
answer), unless any function errored or timed out; the score is the weighted sum of the functions' scores.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from rlvr.config import RewardsSection
from rlvr.rewards.types import RewardResult, Sample, Verdict
from rlvr.rewards.worker import failed_result

log = logging.getLogger(__name__)

SOFT_FRACTION = 0.8
"""The worker's own deadline, as a fraction of the hard limit: most overruns end cleanly, without a kill."""


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
    """One `python -m rlvr.rewards.worker` child in its own process group, talked to through two pipes."""

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
        self._send = Connection(parent_write, readable=False)
        self._recv = Connection(parent_read, writable=False)
        self._send.send(("init", init))
        reply = self.recv(startup_timeout_s)
        if reply is None or reply[0] != "ready":
            self.kill()
            detail = "no answer" if reply is None else reply[1].strip().splitlines()[-1]
            raise RuntimeError(f"reward worker did not start within {startup_timeout_s:.0f} s: {detail}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, message: tuple) -> None:
        self._send.send(message)

    def recv(self, timeout_s: float) -> tuple | None:
        """The next message, or None if none arrives in time; EOFError/OSError if the worker died."""
        if not self._recv.poll(timeout_s):
            return None
        return self._recv.recv()

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
        self._recv.close()

    def close(self) -> None:
        try:
            self._send.send(("close", None))
            self.proc.wait(timeout=5.0)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


class RewardService:
    """Scores batches of samples with the configured reward functions, in one killable worker process."""

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
        defaults). `max_completion_chars`: longer completions get `error`. `memory_limit_mb`: the worker's address
        space limit (None: none). `recycle_rss_mb`: restart the worker between batches once it is this large."""
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
        self.restarts = 0
        """Workers replaced after a kill, a death or outgrowing `recycle_rss_mb`."""
        self._worker: _WorkerProcess | None = _WorkerProcess(self._init, startup_timeout_s)

    def worker_pid(self) -> int:
        return self._live_worker().pid

    def score(self, samples: list[Sample]) -> list[RewardResult]:
        """One result per sample, in order; never raises for a sample's content or a stuck/crashed check."""
        payload = [(s.prompt, s.completion, s.reference) for s in samples]
        results: list[RewardResult] = []
        while len(results) < len(payload):
            results.extend(self._score_until_failure(payload[len(results) :]))
        return results

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def __enter__(self) -> RewardService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _live_worker(self) -> _WorkerProcess:
        if self._worker is None or self._worker.proc.poll() is not None:
            self._replace()
        assert self._worker is not None
        return self._worker

    def _replace(self) -> None:
        if self._worker is not None:
            self._worker.kill()
            self.restarts += 1
        self._worker = None  # if the new one fails to start, the next call tries again
        self._worker = _WorkerProcess(self._init, self._startup_timeout_s)

    def _start_batch(self, payload: list[tuple]) -> _WorkerProcess:
        worker = self._live_worker()
        try:
            worker.send(("score", payload))
        except OSError:  # it died between batches: not this batch's fault, so once more on a fresh worker
            self._replace()
            worker = self._live_worker()
            worker.send(("score", payload))
        return worker

    def _score_until_failure(self, payload: list[tuple]) -> list[RewardResult]:
        """Score from the start of `payload` until done or until a check is killed or kills its worker; the
        failed sample gets its verdict here and the caller resumes after it with a fresh worker."""
        worker = self._start_batch(payload)
        out: list[RewardResult] = []
        started = time.perf_counter()
        try:
            for _ in payload:
                reply = worker.recv(self.timeout_s)
                now = time.perf_counter()
                if reply is None:
                    reason = f"killed: no answer within the {self.timeout_s:.3g} s hard limit"
                    out.append(self._failed(Verdict.TIMEOUT, reason, now - started))
                    self._replace()
                    return out
                reply[1].elapsed_s = now - started
                out.append(reply[1])
                started = now
            done = worker.recv(self.timeout_s)
        except (EOFError, OSError):
            if len(out) < len(payload):  # a death after the last result costs no sample its verdict
                reason = f"reward worker died ({worker.describe_exit()})"
                out.append(self._failed(Verdict.ERROR, reason, time.perf_counter() - started))
            self._replace()
            return out
        if done is None or done[1] > self._recycle_bytes:
            self._replace()
        return out

    def _failed(self, verdict: Verdict, reason: str, elapsed_s: float) -> RewardResult:
        log.warning("reward sample %s: %s", verdict.value, reason)
        result = failed_result(self.names, verdict, reason)
        result.elapsed_s = elapsed_s
        return result
