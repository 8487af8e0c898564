"""A `ray start --head --block` of our own, on free ports only, stopped by terminating that process.

Every port is chosen here: other Ray clusters may run on the same machine, and a head that silently loses its
dashboard agent's default port (52365) to one of them accepts HTTP but can never run a job.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from rlvr.learner.deepspeed_setup import free_port

VENV_BIN = Path(sys.executable).parent


@dataclass
class Head:
    gcs_address: str
    dashboard: str
    metrics_url: str


def wait_for_http(url: str, deadline_s: float) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:  # 401: up, and asking for the auth token
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {deadline_s} s")


@contextlib.contextmanager
def ray_head(num_cpus: int = 4, env: dict[str, str] | None = None, log=subprocess.DEVNULL):
    # a short temp dir of our own: Ray's sockets live under it and a Unix socket path has at most 107 bytes, which
    # pytest's tmp paths (longer under pytest-xdist) plus Ray's session name exceed; the raylet then never starts
    with tempfile.TemporaryDirectory(prefix="rh", dir="/tmp", ignore_cleanup_errors=True) as temp_dir:
        with _ray_head(Path(temp_dir), num_cpus, env, log) as head:
            yield head


@contextlib.contextmanager
def _ray_head(temp_dir: Path, num_cpus: int, env: dict[str, str] | None, log):
    ports = {name: free_port() for name in ("port", "dashboard-port", "metrics-export-port",
                                            "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                                            "runtime-env-agent-port", "ray-client-server-port",
                                            "node-manager-port", "object-manager-port")}
    # the venv's tools after the machine's own, not before: the venv holds DeepSpeed's pip `ninja` (1.13), the machine
    # may have another (1.11 here), and the two disagree on the build log's command hashes. A head that put the
    # venv's first made its learners rebuild DeepSpeed's shared-memory op (about 70 CPU-s, two compilers for 35 s),
    # and the next learner elsewhere in the suite rebuild it back, each time.
    env = {**os.environ, "RAY_ADDRESS": "", "PATH": f"{os.environ['PATH']}{os.pathsep}{VENV_BIN}", **(env or {})}
    cmd = [str(VENV_BIN / "ray"), "start", "--head", "--block", f"--num-cpus={num_cpus}", "--include-dashboard=true",
           "--dashboard-host=127.0.0.1", f"--temp-dir={temp_dir}", *(f"--{k}={v}" for k, v in ports.items())]
    head = subprocess.Popen(cmd, env=env, stdout=log, stderr=log)
    try:
        dashboard = f"http://127.0.0.1:{ports['dashboard-port']}"
        wait_for_http(f"{dashboard}/api/version", 120)
        yield Head(f"127.0.0.1:{ports['port']}", dashboard, f"http://127.0.0.1:{ports['metrics-export-port']}/metrics")
    finally:
        head.terminate()
        head.wait(timeout=60)
