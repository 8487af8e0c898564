"""A pipeline of stages (e.g. pretrain -> sft -> grpo) as one job: each stage's final Hugging Face export is the
next stage's `model.path`, and the held-out accuracy is printed after every stage.

Every stage's config is the run's config with the stage's `overrides` merged in, written to
OUTPUT_DIR/STAGE/; all of them are validated before the first stage starts, so a typo in the last stage fails in
seconds, not after an hour of pretraining. The Ray cluster is joined once; each stage places and removes its own
actors (pretraining and SFT need only learners).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rlvr.config import ConfigError, RunConfig, StageSpec, merge, validate
from rlvr.trainer.checkpoint import CheckpointDir

PREVIOUS = "<previous stage's export>"
"""Placeholder model path while validating stages before the previous one has run."""


@dataclass
class Stage:
    name: str
    kind: str
    cfg: RunConfig


def stage_config(run: RunConfig, spec: StageSpec, model_path: str | None) -> RunConfig:
    """The run's config with the stage's overrides; `model_path`: the previous stage's export (None: first)."""
    data: dict[str, Any] = run.model_dump(mode="json", exclude={"stages"})
    if "stages" in spec.overrides:
        raise ConfigError(f"stage {spec.stage_name!r}: overrides cannot contain 'stages'")
    data = merge(data, spec.overrides)
    data["run"]["output_dir"] = str(Path(run.run.output_dir) / spec.stage_name)
    data["checkpoint"]["save_final"] = True  # the final export is what the next stage starts from
    if model_path is not None:
        data["model"] = {"path": model_path, "dtype": data["model"]["dtype"]}
    try:
        cfg = validate(data)
    except ConfigError as exc:
        raise ConfigError(f"stage {spec.stage_name!r}: {exc}") from None
    if spec.kind != "grpo":
        lm = cfg.pretrain if spec.kind == "pretrain" else cfg.sft
        per_step = cfg.learner.num_actors * cfg.learner.micro_batch_size
        if lm.batch_rows % per_step:
            raise ConfigError(f"stage {spec.stage_name!r}: {spec.kind}.batch_rows={lm.batch_rows} is not divisible "
                              f"by learner.num_actors*learner.micro_batch_size = {per_step}")
    return cfg


def plan(run: RunConfig, first_model: str | None = None) -> list[Stage]:
    """Every stage's config, checked now; later stages carry a placeholder model path until hand-off."""
    names = [s.stage_name for s in run.stages]
    if len(set(names)) != len(names):
        raise ConfigError(f"stage names must be unique, got {names}")
    return [Stage(s.stage_name, s.kind, stage_config(run, s, first_model if i == 0 else PREVIOUS))
            for i, s in enumerate(run.stages)]


def final_export(stage_cfg: RunConfig) -> str:
    found = CheckpointDir(Path(stage_cfg.run.output_dir), stage_cfg.checkpoint.keep_last).latest()
    if found is None or not (found[0] / "hf" / "config.json").is_file():
        raise ConfigError(f"no finished checkpoint with an hf/ export in {stage_cfg.run.output_dir}/checkpoints")
    return str(found[0] / "hf")


def export_dir(path: str) -> str:
    """`--from`: a checkpoint directory (its hf/ export) or a model directory."""
    p = Path(path)
    if (p / "hf" / "config.json").is_file():
        return str(p / "hf")
    if (p / "config.json").is_file():
        return str(p)
    raise ConfigError(f"--from {path!r} is neither a checkpoint directory with hf/ nor a model directory")


def select(stages: list[Stage], only: list[str] | None, start_from: str | None) -> tuple[list[Stage], str | None]:
    """The stages to run and the model the first of them starts from (None: the config's own model)."""
    if not only:
        return stages, export_dir(start_from) if start_from else None
    unknown = [n for n in only if n not in {s.name for s in stages}]
    if unknown:
        raise ConfigError(f"--stage {unknown[0]!r} is not a stage of this config ({[s.name for s in stages]})")
    chosen = [s for s in stages if s.name in only]
    first = stages.index(chosen[0])
    if start_from:
        return chosen, export_dir(start_from)
    if first == 0:
        return chosen, None
    try:
        return chosen, final_export(stages[first - 1].cfg)
    except ConfigError:
        raise ConfigError(f"stage {chosen[0].name!r} starts from stage {stages[first - 1].name!r}'s export, which "
                          "does not exist yet: run that stage first or pass --from CHECKPOINT") from None


def run_pipeline(run: RunConfig, only: list[str] | None = None, start_from: str | None = None) -> dict[str, dict]:
    from rlvr.launch.cluster import connect
    from rlvr.launch.stage_eval import evaluate, held_out_examples

    stages, model_path = select(plan(run), only, start_from)
    out = Path(run.run.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    held_out = held_out_examples(run.stage_eval, run.run.seed) if run.stage_eval.enabled else []
    connect(run)
    acc_file = out / "stage_accuracy.json"
    # running some stages alone keeps the others' earlier results
    results: dict[str, dict] = json.loads(acc_file.read_text()) if only and acc_file.is_file() else {}
    t0 = time.perf_counter()
    for i, stage in enumerate(stages):
        spec = next(s for s in run.stages if s.stage_name == stage.name)
        cfg = stage_config(run, spec, model_path)  # the real hand-off path replaces the placeholder
        print(f"[rlvr] === stage {i + 1}/{len(stages)}: {stage.name} ({stage.kind}) from "
              f"{cfg.model.path or 'random init'} ===", flush=True)
        t_stage = time.perf_counter()
        run_stage(stage.kind, cfg)
        model_path = final_export(cfg)
        results[stage.name] = {"kind": stage.kind, "export": model_path, "start": cfg.model.path,
                               "train_s": round(time.perf_counter() - t_stage, 1)}
        if held_out:
            results[stage.name].update(evaluate(model_path, run.stage_eval, held_out))
            r = results[stage.name]
            print(f"[rlvr] after {stage.name}: held-out accuracy {r['accuracy']:.3f} ({r['correct']}/{r['n']}), "
                  f"e.g. {r['example_output'][:60]!r}", flush=True)
        acc_file.write_text(json.dumps(results, indent=2))
    summary = ", ".join(f"{k} {v['accuracy']:.3f}" for k, v in results.items() if "accuracy" in v)
    print(f"[rlvr] pipeline done in {time.perf_counter() - t0:.0f} s; held-out accuracy: {summary}", flush=True)
    return results


def run_stage(kind: str, cfg: RunConfig) -> None:
    if kind == "grpo":
        from rlvr.launch.train_cli import run_grpo_job

        run_grpo_job(cfg)
    elif kind == "rft":
        from rlvr.launch.rft import run_rft_job

        run_rft_job(cfg)
    else:
        run_lm_job(kind, cfg)


def run_lm_job(kind: str, cfg: RunConfig, rows: list | None = None) -> dict[str, float]:
    """Pretraining or SFT: only learner actors; the data is tokenised and packed on the driver first (`rows`:
    already packed, e.g. the rft stage's own samples)."""
    from rlvr.actors.learner_group import LearnerGroup
    from rlvr.data.lm_data import build_rows
    from rlvr.launch.cluster import Placement, connect
    from rlvr.model_io import load_tokenizer, resolve_model_path
    from rlvr.trainer.lm_loop import lm_section, run_lm

    lm = lm_section(cfg, kind)
    out = Path(cfg.run.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_path = resolve_model_path(cfg.model, out, cfg.run.seed)
    rows = rows if rows is not None else build_rows(kind, lm, load_tokenizer(model_path), cfg.run.seed)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    connect(cfg)
    placement = Placement(cfg, only=("learner",))
    learners = None
    try:
        accum = lm.batch_rows // (cfg.learner.num_actors * cfg.learner.micro_batch_size)
        learners = LearnerGroup(cfg, model_path, placement.scheduling("learner"), lm.steps, grad_accum_steps=accum)
        return run_lm(kind, cfg, learners, rows)
    finally:
        if learners is not None:
            learners.shutdown()
        placement.remove()
