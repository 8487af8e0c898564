"""`rlvr data CONFIG [--set key=value ...]`: run the config's `curate` section alone (the `data` stage kind does
the same inside a pipeline) and print the manifest's counts."""

from __future__ import annotations

import argparse

from rlvr.config import load_config


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="rlvr data", description=__doc__)
    p.add_argument("config", help="YAML with a `curate:` section (docs/curation.md)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set curate.minhash.threshold=0.8 (repeatable)")
    args = p.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    from rlvr.data.curate import eval_texts, read_documents
    from rlvr.launch.stages import generated_corpora, run_data

    generated = generated_corpora(cfg)
    read_documents(cfg.curate, generated)  # bad sources and keys fail here, before Ray starts
    if cfg.curate.decontaminate.enabled:
        eval_texts(cfg.curate.decontaminate, generated)
    run_data(cfg)
    return 0
