"""Preemption: SIGTERM (what `ray job stop` and a spot instance's reclaim send the driver) or a first Ctrl-C
(SIGINT) asks the run to stop at the next step boundary, after a checkpoint; the run then ends with exit code 0 and
a line saying how to resume.

The handler only sets a flag: the step in flight finishes, so the checkpoint is an ordinary one and the resumed run
logs exactly what an uninterrupted run would. A second signal of the same kind gets the default action: SIGTERM
ends the process, a second Ctrl-C raises KeyboardInterrupt at once (the steps since the last checkpoint are
lost, as with a kill). A repeat within REPEAT_WINDOW_S of the first counts as the same request: GNU `timeout`
delivers its signal twice, to the command and then to its whole process group (seen with strace; when the handler
ran between the two, a 2026-12-07 GPU run lost the steps since its last checkpoint).
`ray job stop` allows RAY_JOB_STOP_WAIT_TIME_S (default 3 s) before it kills the job: raise it to more than a step
plus a checkpoint save on clusters that use it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from contextlib import contextmanager

_first_at: dict[int, float] = {}  # signal number -> time.monotonic() of its first delivery in this block; the
# first key is the signal that asked for the stop
REPEAT_WINDOW_S = 1.0  # far shorter than a person's second Ctrl-C, far longer than `timeout`'s two kill() calls
_DEFAULTS = {signal.SIGTERM: signal.SIG_DFL, signal.SIGINT: signal.default_int_handler}


class Preempted(Exception):
    """Raised after the checkpoint is committed; `rlvr train` prints it and exits 0."""

    def __init__(self, step: int, output_dir: str, signame: str = "SIGTERM"):
        super().__init__(f"rlvr: stopped by {signame} after step {step}, checkpoint saved in {output_dir}/checkpoints; "
                         f"continue with the same command plus --set checkpoint.resume=true")
        self.step = step


def requested() -> bool:
    return bool(_first_at)


def stop_if_requested(step: int, steps: int, output_dir: str) -> None:
    """Called at a step boundary after the checkpoint that `requested()` asked for (`step` steps done of `steps`;
    after the last one the run simply ends)."""
    if _first_at and step < steps:
        raise Preempted(step, output_dir, signal.Signals(next(iter(_first_at))).name)


def _on_signal(signum, frame) -> None:
    now = time.monotonic()
    if signum in _first_at:
        if now - _first_at[signum] < REPEAT_WINDOW_S:
            return  # the same request, delivered twice
        signal.signal(signum, _DEFAULTS[signum])  # a second request ends the run at once, as it would by default
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        os.kill(os.getpid(), signum)
        return
    _first_at[signum] = now
    again = "Ctrl-C again" if signum == signal.SIGINT else "SIGTERM again"
    print(f"[rlvr] {signal.Signals(signum).name}: saving a checkpoint at the end of this step, then stopping "
          f"({again} aborts)", flush=True)


@contextmanager
def stop_on_signal():
    """Within this block SIGTERM or SIGINT requests a stop at the next step boundary (main thread only: elsewhere,
    e.g. a test runner's worker thread, signals cannot be caught and the block does nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _first_at.clear()
    previous = {sig: signal.signal(sig, _on_signal) for sig in _DEFAULTS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _first_at.clear()
