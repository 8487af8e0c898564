"""Checkpoint directories: written under a temporary name and renamed when complete, so a crash mid-save never
leaves a checkpoint that loads half; the newest complete ones are kept.

Each checkpoint ends with a manifest (sha256 of every file, written last): `latest()` verifies the newest one and,
if a file is missing, truncated or changed (a full disk, a copy cut short), names it in one line, moves it aside
(`step_N.damaged`, never deleted) and falls back to the one before. Checkpoints carry the run id of the run directory
(`rlvr.utils.run_dir`): rotation and resume ignore any written by another run.

A checkpoint holds everything a resumed run needs to continue exactly: each learner rank's DeepSpeed state (weights,
optimizer, LR schedule) and RNG states, and the driver's state (step, data-loader position, RNG states). Sampling
seeds are a function of (run seed, step), so rollout workers need no state of their own beyond the weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from rlvr.config import ConfigError
from rlvr.utils.run_dir import read_run_id

COMPLETE = "driver_state.json"  # its presence marks a finished checkpoint (also in those from before manifests)
MANIFEST = "manifest.json"  # written after everything else: sha256 of every other file
STAGING = ".tmp"
DAMAGED = ".damaged"


class CheckpointError(ConfigError):
    """No intact checkpoint to resume from: one line for the user (`rlvr: error: ...`), no traceback."""


class CheckpointDir:
    def __init__(self, root: Path, keep_last: int):
        self.root, self.keep_last = root / "checkpoints", keep_last
        self.run_id = read_run_id(root)

    def staging(self, step: int) -> Path:
        path = self.root / f"step_{step:06d}{STAGING}"
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def commit(self, staging: Path, driver_state: dict) -> Path:
        """Mark `staging` complete and move it to its final name in one rename, then drop the oldest."""
        if self.run_id is not None:
            driver_state = {**driver_state, "run_id": self.run_id}
        _write_atomic(staging / COMPLETE, json.dumps(driver_state))
        write_manifest(staging, self.run_id)
        final = staging.with_suffix("")
        if final.exists():  # the same step saved again (a resumed run): the old copy goes first
            old = final.with_suffix(".old")
            shutil.rmtree(old, ignore_errors=True)
            final.rename(old)
            shutil.rmtree(old)
        staging.rename(final)
        for stale in self.complete()[: -self.keep_last]:
            shutil.rmtree(stale, ignore_errors=True)
        for leftover in self.root.glob(f"step_*{STAGING}"):  # half-written saves of a crashed run
            if leftover != staging:
                shutil.rmtree(leftover, ignore_errors=True)
        return final

    def complete(self) -> list[Path]:
        """This run's finished checkpoints, oldest first (another run's, with a different run id, are left out)."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.glob("step_*")
                      if not p.suffix and (p / COMPLETE).is_file() and self._owned(p))

    def _owned(self, path: Path) -> bool:
        if self.run_id is None:
            return True
        owner = _recorded_run_id(path)
        return owner is None or owner == self.run_id  # None: from before run ids, or unreadable (verified later)

    def latest(self) -> tuple[Path, dict] | None:
        """The newest intact checkpoint and its driver state; damaged ones are named, moved aside and skipped."""
        done = self.complete()
        for path in reversed(done):
            problem = verify(path)
            if problem is None:
                return path, json.loads((path / COMPLETE).read_text())
            aside = path.with_name(path.name + DAMAGED)
            shutil.rmtree(aside, ignore_errors=True)
            path.rename(aside)
            print(f"[rlvr] checkpoint {path} is damaged ({problem}): moved to {aside.name}, "
                  "falling back to the previous one", flush=True)
        # damaged ones found now or by an earlier resume: starting from step 0 instead would be silent data loss
        if done or (self.root.is_dir() and any(self.root.glob(f"step_*{DAMAGED}"))):
            raise CheckpointError(f"no intact checkpoint in {self.root}: the damaged ones are moved aside as "
                                  f"step_*{DAMAGED}; start again without checkpoint.resume, with run.overwrite=true")
        return None


def _recorded_run_id(path: Path) -> str | None:
    for name in (MANIFEST, COMPLETE):
        try:
            run_id = json.loads((path / name).read_text()).get("run_id")
        except (OSError, ValueError, AttributeError):
            continue
        if run_id:
            return run_id
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _files(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")
                  if p.is_file() and p.name != MANIFEST)


def _hash_all(directory: Path, names: list[str]) -> dict[str, str]:
    # hashlib releases the GIL: a multi-GB checkpoint hashes on several cores
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        return dict(zip(names, pool.map(lambda n: _sha256(directory / n), names)))


def write_manifest(directory: Path, run_id: str | None) -> None:
    names = _files(directory)
    sizes = {n: (directory / n).stat().st_size for n in names}
    manifest = {"run_id": run_id, "files": {n: {"sha256": h, "bytes": sizes[n]}
                                            for n, h in _hash_all(directory, names).items()}}
    _write_atomic(directory / MANIFEST, json.dumps(manifest, indent=1))


_verified: set[tuple] = set()  # (checkpoint, every file's mtime): preflight, resume and the overlap batch all ask


def verify(path: Path) -> str | None:
    """What is wrong with the checkpoint at `path`, or None if every file matches its manifest."""
    try:
        json.loads((path / COMPLETE).read_text())["step"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{COMPLETE} is empty or not valid JSON"
    if not (path / MANIFEST).is_file():
        return None  # written before manifests: nothing to check against
    try:
        files = json.loads((path / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{MANIFEST} is empty or not valid JSON"
    for name, want in files.items():
        f = path / name
        if not f.is_file():
            return f"{name} is missing"
        if f.stat().st_size != want["bytes"]:
            return f"{name} has {f.stat().st_size} bytes, the manifest says {want['bytes']}"
    key = (str(path), tuple((n, (path / n).stat().st_mtime_ns) for n in [MANIFEST, *files]))
    if key in _verified:  # verified already, and no file written since
        return None
    got = _hash_all(path, list(files))
    for name, want in files.items():
        if got[name] != want["sha256"]:
            return f"{name} does not match its sha256 in {MANIFEST}"
    _verified.add(key)
    return None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".part")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_rng(path: Path) -> None:
    torch.save(rng_state(), path)


def load_rng(path: Path) -> None:
    """Restore RNG states saved by `save_rng`; a checkpoint from before they were saved has none to restore."""
    if path.is_file():
        set_rng_state(torch.load(path, weights_only=False))  # our own file: Python and NumPy states are not tensors
