"""`rlvr` console script. Each subcommand lives in its own module; this file only dispatches.

Errors a user can fix (bad config, missing model, impossible resources) are `ConfigError`s: printed as one line,
exit code 2, before any actor starts.
"""

from __future__ import annotations

import importlib
import sys

from rlvr.actors.calls import ActorFailure
from rlvr.config import ConfigError

# subcommand -> "module:function"; each function takes argv (the arguments after the subcommand) and returns an exit code.
SUBCOMMANDS = {
    "train": "rlvr.launch.train_cli:main",
    "eval": "rlvr.eval.cli:main",
    "submit": "rlvr.launch.submit:main",
    "data": "rlvr.data.curate_cli:main",
}

USAGE = """usage: rlvr {train,eval,submit,data} [args...]

  rlvr train [CONFIG] [--set key=value ...]   run a training job (no CONFIG: the embedded default pipeline)
  rlvr eval ...                               evaluate a model or checkpoint (rlvr eval --help)
  rlvr submit CONFIG ...                      check, then submit a job to a Ray cluster (rlvr submit --help)
  rlvr data CONFIG [--set key=value ...]      curate the config's `curate.sources` on Ray Data (docs/curation.md)
"""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        # `rlvr` alone runs the embedded default pipeline (rlvr train with no config).
        if not argv:
            argv = ["train"]
        else:
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
    except ActorFailure as exc:
        # an actor that cannot be replaced (a learner rank) died or hung: the run stops with its actors removed,
        # and its checkpoints are intact
        print(f"rlvr: run stopped: {exc}; continue from the last checkpoint with --set checkpoint.resume=true",
              file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
