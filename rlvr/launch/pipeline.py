"""A pipeline of stages (e.g. pretrain -> sft -> grpo) as one job: each stage returns a `StageResult`
(`rlvr.launch.stages`) whose model is the next stage's `model.path` (and whose data, if it wrote any, the next
stage's data), and the held-out accuracy is printed after every stage.

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

from rlvr.config import ConfigError, RunConfig, StageSpec, merge, validate
from rlvr.data.filters import build_filters
from rlvr.launch.stages import RUNNERS, StageResult, final_model
from rlvr.utils.run_dir import check as check_run_dir

PREVIOUS = "<previous stage's export>"
"""Placeholder model path while validating stages before the previous one has run."""


@dataclass
class Stage:
    name: str
    kind: str
    cfg: RunConfig


def stage_config(run: RunConfig, spec: StageSpec, model_path: str | None, data_path: str | None = None) -> RunConfig:
    """The run's config with the stage's overrides; `model_path`: the previous stage's model (None: first);
    `data_path`: data the previous stage wrote, which this stage then reads (as JSONL) instead of its own source."""
    data: dict[str, Any] = run.model_dump(mode="json", exclude={"stages"})
    if "stages" in spec.overrides:
        raise ConfigError(f"stage {spec.stage_name!r}: overrides cannot contain 'stages'")
    data = merge(data, spec.overrides)
    data["run"]["output_dir"] = str(Path(run.run.output_dir) / spec.stage_name)
    data["checkpoint"]["save_final"] = True  # the final export is what the next stage starts from
    if model_path is not None:
        data["model"] = {"path": model_path, "dtype": data["model"]["dtype"]}
    if data_path is not None and spec.kind == "data":
        raise ConfigError(f"stage {spec.stage_name!r}: a data stage reads curate.sources, not the previous "
                          "stage's data; put data stages first")
    if data_path is not None:
        section = "data" if spec.kind == "grpo" else spec.kind
        # a curation stage's Parquet folder holds `text`; files and folders both go through records.open_source
        text = {"text_key": "text"} if spec.kind == "pretrain" else {}
        data[section] = {**data[section], "source": "jsonl", "path": data_path, **text}
    try:
        cfg = validate(data)
        build_filters(cfg.data.filters)  # a misspelt filter fails now, not after the stages before it
    except ConfigError as exc:
        raise ConfigError(f"stage {spec.stage_name!r}: {exc}") from None
    if spec.kind not in ("grpo", "data"):  # pretrain, sft, and rft (which trains with sft.batch_rows)
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


def export_dir(path: str) -> str:
    """`--from`: a checkpoint directory (its hf/ export) or a model directory."""
    p = Path(path)
    if (p / "hf" / "config.json").is_file():
        return str(p / "hf")
    if (p / "config.json").is_file():
        return str(p)
    raise ConfigError(f"--from {path!r} is neither a checkpoint directory with hf/ nor a model directory")


def select(stages: list[Stage], only: list[str] | None, start_from: str | None
           ) -> tuple[list[Stage], StageResult | None]:
    """The stages to run and what the first of them starts from (None: the config's own model and data)."""
    start = StageResult(export_dir(start_from)) if start_from else None
    if not only:
        return stages, start
    unknown = [n for n in only if n not in {s.name for s in stages}]
    if unknown:
        raise ConfigError(f"--stage {unknown[0]!r} is not a stage of this config ({[s.name for s in stages]})")
    chosen = [s for s in stages if s.name in only]
    first = stages.index(chosen[0])
    if start_from or first == 0:
        return chosen, start
    try:
        return chosen, previous_result(stages[first - 1].cfg)
    except ConfigError:
        before = stages[first - 1]
        if before.kind == "data":  # it hands on documents, not a model
            raise ConfigError(f"stage {chosen[0].name!r} trains on stage {before.name!r}'s curated documents, which "
                              f"do not exist yet in {before.cfg.run.output_dir}: run that stage first (--stage "
                              f"{before.name} --stage {chosen[0].name})") from None
        raise ConfigError(f"stage {chosen[0].name!r} starts from stage {before.name!r}'s export, which "
                          "does not exist yet: run that stage first or pass --from CHECKPOINT") from None


def previous_result(stage_cfg: RunConfig) -> StageResult:
    """What a finished stage handed on; a run from before stage results were saved: its final export."""
    return StageResult.load(Path(stage_cfg.run.output_dir)) or StageResult(final_model(stage_cfg))


def run_pipeline(run: RunConfig, only: list[str] | None = None, start_from: str | None = None) -> dict[str, dict]:
    from rlvr.launch.cluster import connect
    from rlvr.launch.input_checks import check_pipeline_inputs
    from rlvr.launch.stage_eval import evaluate, held_out_examples

    stages, previous = select(plan(run), only, start_from)
    # every stage's inputs, before the first stage's actors
    check_pipeline_inputs(stages, previous.model_path if previous else None)
    for stage in stages:  # a stage that would clobber an earlier run fails now, not after the stages before it
        check_run_dir(Path(stage.cfg.run.output_dir), stage.cfg.checkpoint.resume, stage.cfg.run.overwrite)
    out = Path(run.run.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    held_out = held_out_examples(run.stage_eval, run.run.seed, run.data.filters) if run.stage_eval.enabled else []
    connect(run)
    acc_file = out / "stage_accuracy.json"
    # running some stages alone keeps the others' earlier results
    results: dict[str, dict] = json.loads(acc_file.read_text()) if only and acc_file.is_file() else {}
    t0 = time.perf_counter()
    for i, stage in enumerate(stages):
        spec = next(s for s in run.stages if s.stage_name == stage.name)
        # the real hand-off replaces the placeholder
        model_path, data_path = (previous.model_path, previous.data_path) if previous else (None, None)
        cfg = stage_config(run, spec, model_path, data_path)
        print(f"[rlvr] === stage {i + 1}/{len(stages)}: {stage.name} ({stage.kind}) from "
              f"{cfg.model.path or 'random init'} ===", flush=True)
        t_stage = time.perf_counter()
        previous = RUNNERS[stage.kind](cfg)
        previous.save(Path(cfg.run.output_dir))
        results[stage.name] = {"kind": stage.kind, "export": previous.model_path, "start": cfg.model.path,
                               "train_s": round(time.perf_counter() - t_stage, 1)}
        if held_out and previous.model_path and stage.kind != "data":  # a data stage trains nothing
            results[stage.name].update(evaluate(previous.model_path, run.stage_eval, held_out))
            r = results[stage.name]
            print(f"[rlvr] after {stage.name}: held-out accuracy {r['accuracy']:.3f} ({r['correct']}/{r['n']}), "
                  f"e.g. {r['example_output'][:60]!r}", flush=True)
        acc_file.write_text(json.dumps(results, indent=2))
    summary = ", ".join(f"{k} {v['accuracy']:.3f}" for k, v in results.items() if "accuracy" in v)
    print(f"[rlvr] pipeline done in {time.perf_counter() - t0:.0f} s; held-out accuracy: {summary}", flush=True)
    return results
