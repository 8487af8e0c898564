"""A run directory belongs to one run.

The first run into `run.output_dir` writes a run id there (RUN_ID_FILE); every checkpoint it commits carries the same
id, so checkpoint rotation and resume only ever touch this run's checkpoints. Starting a run in a directory that
already holds one (its metrics or checkpoints) is refused before any actor starts, unless the run continues it
(`checkpoint.resume`) or asks for the old one to be moved aside (`run.overwrite`: renamed to a timestamped sibling,
never deleted). Without this, a second run truncated the first's metrics.jsonl and rotation deleted the second run's
checkpoints because the first's higher step numbers sorted after them.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from rlvr.config import ConfigError

RUN_ID_FILE = "run_id"


def read_run_id(out: Path) -> str | None:
    try:
        return (out / RUN_ID_FILE).read_text().strip() or None
    except (FileNotFoundError, NotADirectoryError):
        return None


def holds_run(out: Path) -> bool:
    """Whether `out` holds results a new run would clobber: logged steps or checkpoints (finished or not)."""
    metrics = out / "metrics.jsonl"
    if metrics.is_file() and metrics.stat().st_size > 0:
        return True
    ckpts = out / "checkpoints"
    return ckpts.is_dir() and any(ckpts.glob("step_*"))


def check(out: Path, resume: bool, overwrite: bool) -> None:
    """Raise ConfigError if a run into `out` with these settings would lose another run's results."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"run.output_dir {str(out)!r} is a file, not a directory")
    if resume and overwrite:
        raise ConfigError("checkpoint.resume=true and run.overwrite=true contradict each other: resume continues "
                          "the run in run.output_dir, overwrite moves it aside")
    if resume or overwrite or not holds_run(out):
        return
    raise ConfigError(f"run.output_dir {str(out)!r} already holds a run (metrics.jsonl or checkpoints/): continue it "
                      "with --set checkpoint.resume=true, move it aside with --set run.overwrite=true, or choose "
                      "another run.output_dir")


def claim(out: Path, resume: bool, overwrite: bool) -> str:
    """Check `out` (see `check`), move an old run aside if asked, and return this run's id (kept when resuming)."""
    check(out, resume, overwrite)
    if overwrite and holds_run(out):
        aside = out.with_name(f"{out.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
        n = 1
        while aside.exists():  # two overwrites within a second
            aside, n = out.with_name(f"{out.name}.old-{time.strftime('%Y%m%d-%H%M%S')}-{n}"), n + 1
        out.rename(aside)
        print(f"[rlvr] run.overwrite: the previous run in {out} was moved to {aside}", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    run_id = read_run_id(out)
    if run_id is None:
        # a directory from before run ids (resumed) or a fresh one: the run id is created here, once
        run_id = uuid.uuid4().hex[:12]
        tmp = out / (RUN_ID_FILE + ".part")
        tmp.write_text(run_id + "\n")
        tmp.replace(out / RUN_ID_FILE)
    return run_id
