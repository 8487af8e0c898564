"""Run one benchmark phase in its own process group, with a deadline and a stack dump if it hangs.

Each phase builds its own vLLM engine; a separate process gives it the whole GPU and frees every byte on exit
(vLLM's engine-core and worker subprocesses included, hence the process group). vLLM's first start on a fresh
machine has hung for minutes before: on a timeout we print py-spy stacks before killing, so the log says where.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading


def run_phase(cmd: list[str], timeout_s: float, tail_chars: int = 6000) -> dict:
    """Run `cmd`; return the JSON after its last `RESULT ` line, or {"error": ...}. Its stderr tail is echoed."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env=os.environ)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        dump_stacks(proc.pid)
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        sys.stderr.write(err[-tail_chars:])
        # a phase may have emitted a partial result before it ran out of time (e.g. timings before a profile)
        partial = [l for l in out.splitlines() if l.startswith("RESULT ")]
        return {**(json.loads(partial[-1][len("RESULT "):]) if partial else {}),
                "error": f"timeout after {timeout_s:.0f} s"}
    finally:
        # whatever the phase left behind (vLLM's engine core, Ray's daemons) must not hold the GPU for the next
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    sys.stderr.write(err[-tail_chars:])
    sys.stdout.write("\n".join(l for l in out.splitlines() if not l.startswith("RESULT ")) + "\n")
    lines = [l for l in out.splitlines() if l.startswith("RESULT ")]
    if not lines:
        return {"error": f"rc={proc.returncode}, no result"}
    return json.loads(lines[-1][len("RESULT "):])


def dump_stacks(pid: int) -> None:
    spy = shutil.which("py-spy") or next((p for p in ("/root/site/bin/py-spy",) if os.path.exists(p)), None)
    if spy is None:
        return
    pids = [pid]
    try:  # the children too: vLLM's engine core runs in a child process
        pids += [int(p) for p in subprocess.run(["pgrep", "-g", str(pid)], capture_output=True, text=True,
                                                timeout=10).stdout.split() if int(p) != pid]
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    for p in pids[:6]:
        res = subprocess.run([spy, "dump", "--pid", str(p)], capture_output=True, text=True, timeout=30)
        sys.stderr.write(f"--- py-spy dump pid {p} ---\n{res.stdout[-3000:]}{res.stderr[-500:]}\n")


def nvidia_smi(field: str) -> str | None:
    """GPU 0's value of an `nvidia-smi --query-gpu` field, without units; None where there is no GPU."""
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20).stdout
        return out.strip().splitlines()[0].strip()
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def emit(result: dict) -> None:
    print("RESULT " + json.dumps(result), flush=True)


def run_streaming(cmd: list[str], timeout_s: float, env: dict | None = None, log: str | None = None) -> int | None:
    """Run `cmd` in its own process group with its output going straight to ours (long runs log as they go), and
    also into the file `log` if given; the return code, or None after a timeout (stacks dumped, the whole group
    killed)."""
    sink = open(log, "w") if log else None
    proc = subprocess.Popen(cmd, start_new_session=True, env=env or os.environ, text=True,
                            stdout=subprocess.PIPE if sink else None, stderr=subprocess.STDOUT if sink else None)
    copier = None
    if sink:
        def copy() -> None:
            for line in proc.stdout:
                sys.stdout.write(line)
                sink.write(line)
        copier = threading.Thread(target=copy, daemon=True)
        copier.start()
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        dump_stacks(proc.pid)
        return None
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        if copier:
            copier.join(timeout=10)
            sink.close()
