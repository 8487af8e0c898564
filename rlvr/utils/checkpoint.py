"""Checkpoint directories: written under a temporary name and renamed when complete, so a crash mid-save never
leaves a checkpoint that loads half; the newest complete ones are kept.

A checkpoint holds everything a resumed run needs to continue exactly: each learner rank's DeepSpeed state (weights,
optimizer, LR schedule) and RNG states, and the driver's state (step, data-loader position, RNG states). Sampling
seeds are a function of (run seed, step), so rollout workers need no state of their own beyond the weights.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

COMPLETE = "driver_state.json"  # written last: its presence marks a finished checkpoint
STAGING = ".tmp"


class CheckpointDir:
    def __init__(self, root: Path, keep_last: int):
        self.root, self.keep_last = root / "checkpoints", keep_last

    def staging(self, step: int) -> Path:
        path = self.root / f"step_{step:06d}{STAGING}"
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def commit(self, staging: Path, driver_state: dict) -> Path:
        """Mark `staging` complete and move it to its final name in one rename, then drop the oldest."""
        _write_atomic(staging / COMPLETE, json.dumps(driver_state))
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
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.glob("step_*") if not p.suffix and (p / COMPLETE).is_file())

    def latest(self) -> tuple[Path, dict] | None:
        done = self.complete()
        if not done:
            return None
        return done[-1], json.loads((done[-1] / COMPLETE).read_text())


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
