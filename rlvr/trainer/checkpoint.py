"""Checkpoint directories: written under a temporary name and renamed when complete, so a crash mid-save never
leaves a checkpoint that loads half; the newest complete ones are kept."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

COMPLETE = "driver_state.json"  # written last: its presence marks a finished checkpoint


class CheckpointDir:
    def __init__(self, root: Path, keep_last: int):
        self.root, self.keep_last = root / "checkpoints", keep_last

    def staging(self, step: int) -> Path:
        path = self.root / f"step_{step:06d}.tmp"
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def commit(self, staging: Path, driver_state: dict) -> Path:
        (staging / COMPLETE).write_text(json.dumps(driver_state))
        final = staging.with_suffix("")
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
        for old in self.complete()[: -self.keep_last]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def complete(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.glob("step_*") if p.suffix != ".tmp" and (p / COMPLETE).is_file())

    def latest(self) -> tuple[Path, dict] | None:
        done = self.complete()
        if not done:
            return None
        return done[-1], json.loads((done[-1] / COMPLETE).read_text())
