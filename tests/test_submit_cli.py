"""`rlvr submit` checks before it uploads: the config, that it lies in the working directory, and the upload size
as Ray computes it (.gitignore respected). The submission itself is exercised in tests/test_metrics_export.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rlvr.launch.submit import entrypoint, upload_size

REPO = Path(__file__).resolve().parent.parent
TINY = (REPO / "configs" / "tiny.yaml").read_text()


def submit(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    # port 9 (discard) never runs a dashboard: a check that passed would fail later, at the connection
    return subprocess.run([sys.executable, "-m", "rlvr", "submit", *args, "--address", "http://127.0.0.1:9"],
                          capture_output=True, text=True, timeout=120, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def project(tmp_path: Path, big_bytes: int = 0, ignore_big: bool = False) -> Path:
    (tmp_path / "configs").mkdir(parents=True)
    (tmp_path / "configs" / "tiny.yaml").write_text(TINY)
    if big_bytes:
        (tmp_path / "data.bin").write_bytes(b"\0" * big_bytes)
    if ignore_big:
        (tmp_path / ".gitignore").write_text("data.bin\n")
    return tmp_path


def test_bad_config_is_refused_before_upload(tmp_path):
    work = project(tmp_path)
    proc = submit(work, "configs/tiny.yaml", "--set", "learner.zero_stage=5")
    assert proc.returncode == 2 and proc.stderr.startswith("rlvr: error: config learner.zero_stage"), proc.stderr


def test_config_outside_working_dir_is_refused(tmp_path):
    work = project(tmp_path / "proj")
    (tmp_path / "elsewhere.yaml").write_text(TINY)
    proc = submit(work, str(tmp_path / "elsewhere.yaml"))
    assert proc.returncode == 2 and "outside the working directory" in proc.stderr, proc.stderr


def test_working_dir_over_rays_limit_is_refused_naming_the_culprit(tmp_path):
    work = project(tmp_path, big_bytes=64 * 1024)
    limit = {"RAY_max_grpc_message_size": str(32 * 1024)}  # Ray reads its upload limit from this variable
    proc = submit(work, "configs/tiny.yaml", env=limit)
    assert proc.returncode == 2 and "over Ray's" in proc.stderr and "data.bin" in proc.stderr, proc.stderr


def test_upload_size_respects_gitignore(tmp_path):
    work = project(tmp_path, big_bytes=64 * 1024, ignore_big=True)
    total, per_entry = upload_size(work)
    assert "data.bin" not in per_entry and total < 4096, per_entry


def test_entrypoint_runs_the_config_relative_to_the_working_dir(tmp_path):
    work = project(tmp_path)
    cmd = entrypoint("python", work / "configs" / "tiny.yaml", work, ["run.name=a b"])
    assert cmd == "python -m rlvr train configs/tiny.yaml --set 'run.name=a b'"
