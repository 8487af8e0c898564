"""`rlvr` console script. Each subcommand lives in its own module; this file only dispatches.

Errors a user can fix (bad config, missing model, impossible resources) are `ConfigError`s: printed as one line,
exit code 2, before any actor starts.
"""

from __future__ import annotations

import importlib
import os
import sys

from rlvr.utils.errors import RunStopped
from rlvr.config import ConfigError
from rlvr.utils.preempt import Preempted

# subcommand -> "module:function"; each function takes argv (the arguments after the subcommand) and returns an exit code.
SUBCOMMANDS = {
    "train": "rlvr.launch.train_cli:main",
    "eval": "rlvr.eval.cli:main",
    "submit": "rlvr.launch.submit:main",
    "data": "rlvr.launch.data_cli:main",
    "passrate": "rlvr.launch.passrate_cli:main",
}

USAGE = """usage: rlvr {train,eval,submit,passrate,data} [args...]

  rlvr train [CONFIG] [--set key=value ...]   run a training job (no CONFIG: the embedded default pipeline)
  rlvr eval ...                               evaluate a model or checkpoint (rlvr eval --help)
  rlvr submit CONFIG ...                      check, then submit a job to a Ray cluster (rlvr submit --help)
  rlvr passrate CONFIG --k 16 --out FILE      each training prompt's pass rate with the config's model
  rlvr data CONFIG [--set key=value ...]      curate the config's `curate.sources` on Ray Data (docs/curation.md)
"""


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # a process of its own (console script, python -m), not a call from a test
        _working_dir_on_path()
        from rlvr.launch.actor_env import quiet_driver

        quiet_driver()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        # `rlvr` alone only says what it can do; the embedded default pipeline is `rlvr train` (about 4 minutes)
        print(USAGE, file=sys.stderr)
        return 2
    if argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    if command not in SUBCOMMANDS:
        print(f"rlvr: unknown command {command!r}\n{USAGE}", file=sys.stderr)
        return 2
    module, func = SUBCOMMANDS[command].split(":")
    try:
        return int(getattr(importlib.import_module(module), func)(rest) or 0)
    except ConfigError as exc:
        print(f"rlvr: error: {exc}", file=sys.stderr)
        return 2
    except Preempted as exc:
        # SIGTERM (ray job stop, a spot reclaim): a checkpoint was saved at a step boundary; stopping is not a failure
        print(exc, flush=True)
        return 0
    except RunStopped as exc:
        # an actor that cannot be replaced (a learner rank) died or hung, or a reward function keeps failing: the run stops with its actors removed,
        # and its checkpoints are intact
        print(f"rlvr: run stopped: {exc}; continue from the last checkpoint with --set checkpoint.resume=true",
              file=sys.stderr)
        return 3



def _working_dir_on_path() -> None:
    """`python -m rlvr` puts the working directory first on sys.path and the `rlvr` console script does not (its
    sys.path[0] is the script's bin/): without this, a reward module next to the config (`my_rewards:brevity`)
    imports with one and not the other. Ray's workers get the driver's sys.path, so they find it too."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


if __name__ == "__main__":
    sys.exit(main())
