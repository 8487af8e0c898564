"""A JIT build of DeepSpeed's CPU op killed midway leaves torch's `lock` file behind, and the next learner would
wait on it forever (seen here 2026-12-07: a `rlvr train` stopped by `timeout` mid-build hung a later test run).
`clear_stale_build_lock` removes a lock old enough that no build can still hold it, and keeps a fresh one."""

from __future__ import annotations

import os
import time

from rlvr.learner.deepspeed_setup import SHM_OP, STALE_LOCK_S, clear_stale_build_lock


def test_a_stale_lock_is_removed_and_a_fresh_one_kept(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    assert clear_stale_build_lock() is None  # no lock: nothing to do
    lock = tmp_path / SHM_OP / "lock"
    lock.touch()
    assert clear_stale_build_lock() is None and lock.exists()  # a build may be running
    old = time.time() - STALE_LOCK_S - 5
    os.utime(lock, (old, old))
    assert clear_stale_build_lock() == lock and not lock.exists()
    assert "removed a stale build lock" in capsys.readouterr().out
