"""A pretraining or SFT stage as a job: only learner actors; the data is read, filtered, tokenised and packed on the
driver first, then `rlvr.trainer.lm_loop` runs."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml

from rlvr.config import RunConfig


def run_lm_job(kind: Literal["pretrain", "sft"], cfg: RunConfig, rows: list | None = None) -> dict[str, float]:
    """Pretraining or SFT: only learner actors; the data is tokenised and packed on the driver first (`rows`:
    already packed, e.g. the rft stage's own samples)."""
    from rlvr.actors.learner_group import LearnerGroup
    from rlvr.data.lm_data import build_rows
    from rlvr.launch.cluster import Placement, connect
    from rlvr.model_io import load_tokenizer, resolve_model_path
    from rlvr.trainer.lm_loop import lm_section, run_lm
    from rlvr.utils.checkpoint import CheckpointDir
    from rlvr.utils.preempt import stop_on_signal
    from rlvr.utils.run_dir import claim

    lm = lm_section(cfg, kind)
    out = Path(cfg.run.output_dir)
    claim(out, cfg.checkpoint.resume, cfg.run.overwrite)
    if cfg.checkpoint.resume:  # verified before the learners start
        CheckpointDir(out, cfg.checkpoint.keep_last).latest()
    model_path = resolve_model_path(cfg.model, out, cfg.run.seed)
    if rows is None:
        rows = build_rows(kind, lm, load_tokenizer(model_path), cfg.run.seed, cfg.data.filters)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    connect(cfg)
    placement = Placement(cfg, only=("learner",))
    learners = None
    try:
        accum = lm.batch_rows // (cfg.learner.num_actors * cfg.learner.micro_batch_size)
        learners = LearnerGroup(cfg, model_path, placement.scheduling("learner"), lm.steps, grad_accum_steps=accum)
        with stop_on_signal():
            return run_lm(kind, cfg, learners, rows)
    finally:
        if learners is not None:
            learners.shutdown()
        placement.remove()
