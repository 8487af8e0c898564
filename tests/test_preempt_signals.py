"""The stop request's signal handling (rlvr/utils/preempt.py), without a run: GNU `timeout` delivers its signal twice
(to the command, then to its process group), which must count as one request; a person's second Ctrl-C or a second
SIGTERM still ends the run at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from rlvr.utils import preempt


def test_a_signal_delivered_twice_is_one_request():
    """os.kill to ourselves runs the handler before the next kill, the order that once lost a GPU run's steps."""
    before = signal.getsignal(signal.SIGINT)
    with preempt.stop_on_signal():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt
        os.kill(os.getpid(), signal.SIGTERM)  # the other kind, first of its kind: the stop is already requested
        assert preempt.requested()
        with pytest.raises(preempt.Preempted, match="stopped by SIGINT after step 3"):
            preempt.stop_if_requested(3, 10, "out")
    assert not preempt.requested() and signal.getsignal(signal.SIGINT) is before


def test_a_second_ctrl_c_after_the_window_aborts_even_after_a_sigterm(monkeypatch):
    monkeypatch.setattr(preempt, "REPEAT_WINDOW_S", 0.0)
    with preempt.stop_on_signal():
        os.kill(os.getpid(), signal.SIGTERM)  # the stop request
        os.kill(os.getpid(), signal.SIGINT)  # the first Ctrl-C: the same request again
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize("window, code", [(60.0, 0), (0.0, -signal.SIGTERM)])
def test_a_second_sigterm_ends_the_process_only_after_the_window(window, code):
    """In a child process, since the second SIGTERM's default action ends the process that receives it."""
    script = textwrap.dedent(f"""
        import os, signal
        from rlvr.utils import preempt
        preempt.REPEAT_WINDOW_S = {window}
        with preempt.stop_on_signal():
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
            assert preempt.requested()
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == code, done.stderr
    assert "SIGTERM: saving a checkpoint" in done.stdout
