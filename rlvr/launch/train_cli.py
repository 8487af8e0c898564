"""`rlvr train [CONFIG] [--set key=value ...]`: check everything, then build the actors and run the stage."""

from __future__ import annotations

import argparse
from pathlib import Path

from rlvr.config import ConfigError, load_config
from rlvr.launch.grpo_job import run_grpo_job
from rlvr.launch.pipeline import run_pipeline


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="rlvr train", description=__doc__)
    p.add_argument("config", nargs="?", help="preset YAML (configs/*.yaml); omitted: the embedded default pipeline")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set learner.lr=1e-5 (repeatable)")
    p.add_argument("--stage", dest="stages", action="append", default=[], metavar="NAME",
                   help="run only this stage of a pipeline config (repeatable); it starts from the previous "
                        "stage's export unless --from is given")
    p.add_argument("--from", dest="start_from", metavar="CHECKPOINT",
                   help="start the first stage run from this checkpoint (its hf/ export) or model directory")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in run.output_dir from its newest intact checkpoint (checkpoint.resume)")
    p.add_argument("--overwrite", action="store_true",
                   help="move a previous run in run.output_dir aside (to OUTPUT_DIR.old-TIMESTAMP) and start afresh")
    return p.parse_args(argv)


def default_preset() -> Path:
    """The embedded default pipeline, shipped inside the package (rlvr/presets/default.yaml)."""
    from importlib.resources import files

    return Path(str(files("rlvr") / "presets" / "default.yaml"))


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    flags = ["checkpoint.resume=true"] * args.resume + ["run.overwrite=true"] * args.overwrite
    cfg = load_config(args.config or default_preset(), args.overrides + flags)
    if cfg.stages:
        run_pipeline(cfg, args.stages, args.start_from)
        return 0
    if args.stages or args.start_from:
        raise ConfigError("--stage and --from need a config with `stages:` (this one is a single GRPO stage)")
    run_grpo_job(cfg)
    return 0
