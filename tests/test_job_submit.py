"""`ray job submit --working-dir . -- rlvr train CONFIG` against a head started with `ray start --head`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from rlvr.trainer.deepspeed_setup import free_port

REPO = Path(__file__).resolve().parent.parent
RAY = str(Path(sys.executable).parent / "ray")
pytestmark = pytest.mark.slow


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


@pytest.fixture
def ray_head(tmp_path_factory):
    gcs, dash = free_port(), free_port()
    temp = tmp_path_factory.mktemp("rayhead")
    env = {**os.environ, "RAY_ADDRESS": ""}
    head = subprocess.Popen([RAY, "start", "--head", "--block", f"--port={gcs}", f"--dashboard-port={dash}",
                             "--num-cpus=4", "--include-dashboard=true", f"--temp-dir={temp}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_http(f"http://127.0.0.1:{dash}/api/version", 120)
        yield f"http://127.0.0.1:{dash}"
    finally:
        head.terminate()
        head.wait(timeout=60)


def test_job_submit_runs_to_success(ray_head, tmp_path):
    out = tmp_path / "run"
    # Ray 2.60 turns token auth on for `ray start --head`; the CLI client must be told to send the token.
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_ADDRESS": ""}
    cmd = [RAY, "job", "submit", f"--address={ray_head}", "--working-dir", str(REPO), "--",
           sys.executable, "-m", "rlvr", "train", "configs/tiny.yaml",
           "--set", "run.steps=3", "--set", f"run.output_dir={out}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "succeeded" in proc.stdout
    assert "[rlvr] step 3/3" in proc.stdout  # the job's logs follow the submission
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 3
