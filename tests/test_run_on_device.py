"""benchmarks/gpu/run_on_device.sh's `detach` and `follow`, on CPU: stages started by `detach` outlive the call that
started them (the device tool kills a call's leftover processes, all but those in a session of their own), and a
later call's `follow` reports their end and brings their results back."""

import os
import signal
import subprocess
import tarfile

from tests.gpu_scripts import GPU_SCRIPTS

SCRIPT = GPU_SCRIPTS / "run_on_device.sh"
# a stage that takes a few seconds on any machine: the base model's test, with a sleeping stand-in for `rlvr eval`
SLOW_EVAL = "python3 -c __import__('time').sleep(4);print('stand-in-eval-done')"


def call(tmp_path, *stages, out, follow_s, **env_extra):
    """One device call: the script with a fresh $OUT, then, like the device tool, kill what it left in its group."""
    out.mkdir()
    env = {**os.environ, "R": str(tmp_path / "runs"), "OUT": str(out), "RLVR_NO_SITE": "1", "EVAL": SLOW_EVAL,
           "FOLLOW_S": str(follow_s), **env_extra}
    proc = subprocess.Popen(["bash", str(SCRIPT), *stages], env=env, cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    printed, _ = proc.communicate(timeout=60)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return proc.returncode, printed


def test_detached_stages_outlive_their_call_and_follow_brings_back_their_end(tmp_path):
    detached = tmp_path / "runs" / "detached"
    rc, printed = call(tmp_path, "detach", "eval_base", out=tmp_path / "out1", follow_s=0)
    assert rc == 0 and "detached run still going" in printed, printed
    assert not (detached / "rc").exists()

    rc, printed = call(tmp_path, "detach", "eval_base", out=tmp_path / "out2", follow_s=0)
    assert rc == 1 and "still going: follow it" in printed, printed

    rc, printed = call(tmp_path, "follow", out=tmp_path / "out2b", follow_s=0, FOLLOW_ARCHIVE="1")
    assert rc == 0 and "detached run still going" in printed, printed
    with tarfile.open(tmp_path / "out2b" / "detached_out.tar.gz") as archive:  # what it holds so far
        assert {"log", "out"} <= set(archive.getnames())

    rc, printed = call(tmp_path, "follow", out=tmp_path / "out3", follow_s=50)
    assert rc == 0, printed
    assert "stand-in-eval-done" in printed and "=== eval_base rc=0" in printed
    assert "detached run ended: rc=0" in printed
    with tarfile.open(tmp_path / "out3" / "detached_out.tar.gz") as archive:
        assert "log" in archive.getnames()
        assert b"stand-in-eval-done" in archive.extractfile("log").read()


def test_follow_reports_a_failed_detached_stage(tmp_path):
    rc, printed = call(tmp_path, "detach", "no_such_stage", out=tmp_path / "out1", follow_s=30)
    assert rc == 1 and "unknown stage no_such_stage" in printed and "detached run ended: rc=1" in printed, printed


def test_follow_without_a_detached_run_says_so(tmp_path):
    rc, printed = call(tmp_path, "follow", out=tmp_path / "out1", follow_s=1)
    assert rc == 1 and "no run was detached" in printed, printed
