"""Stage kinds and what one stage hands the next.

A stage runner takes the stage's whole config and returns a `StageResult`: the model the next stage starts from,
the data it wrote for the next stage (if any), and its final metrics. The pipeline (`rlvr.launch.pipeline`) passes
the result on and keeps it in OUTPUT_DIR/STAGE/stage_result.json, so a later stage run alone finds its start.
A new stage kind is one runner in `RUNNERS` (and its name in `StageSpec.kind`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rlvr.config import ConfigError, RunConfig
from rlvr.utils.checkpoint import CheckpointDir

RESULT_FILE = "stage_result.json"


@dataclass(frozen=True)
class StageResult:
    model_path: str | None
    """The model the next stage starts from (a stage that trains nothing passes its own start through)."""
    data_path: str | None = None
    """Data this stage wrote for the next one (the next stage reads it instead of its configured source)."""
    metrics: dict[str, float] = field(default_factory=dict)
    """The stage's last logged metrics."""

    def save(self, stage_dir: Path) -> None:
        (stage_dir / RESULT_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, stage_dir: Path) -> StageResult | None:
        path = stage_dir / RESULT_FILE
        if not path.is_file():
            return None
        try:
            return cls(**json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError):
            raise ConfigError(f"{path}: not a stage result (rerun the stage or pass --from CHECKPOINT)") from None


def final_model(cfg: RunConfig) -> str:
    """The Hugging Face export of a training stage's newest committed checkpoint."""
    found = CheckpointDir(Path(cfg.run.output_dir), cfg.checkpoint.keep_last).latest()
    if found is None or not (found[0] / "hf" / "config.json").is_file():
        raise ConfigError(f"no finished checkpoint with an hf/ export in {cfg.run.output_dir}/checkpoints")
    return str(found[0] / "hf")


def run_grpo(cfg: RunConfig) -> StageResult:
    from rlvr.launch.grpo_job import run_grpo_job

    metrics = run_grpo_job(cfg)
    return StageResult(final_model(cfg), None, metrics)


def run_pretrain(cfg: RunConfig) -> StageResult:
    from rlvr.launch.lm_job import run_lm_job

    metrics = run_lm_job("pretrain", cfg)
    return StageResult(final_model(cfg), None, metrics)


def run_sft(cfg: RunConfig) -> StageResult:
    from rlvr.launch.lm_job import run_lm_job

    metrics = run_lm_job("sft", cfg)
    return StageResult(final_model(cfg), None, metrics)


def run_rft(cfg: RunConfig) -> StageResult:
    from rlvr.launch.rft import run_rft_job

    rounds = run_rft_job(cfg)
    last = rounds[-1]
    return StageResult(final_model(cfg), None, {k: float(last[k]) for k in ("pass_rate", "kept", "samples")})


def generated_corpora(cfg: RunConfig) -> dict[str, list[str]]:
    """What `generated:` names in curate.sources / eval_sets: the run's generated pretraining corpus (with the
    planted duplicates and held-out leaks its source asks for) and the held-out problems."""
    wanted = {s.generated for s in cfg.curate.sources} | {e.generated for e in cfg.curate.decontaminate.eval_sets}
    if not wanted - {None}:
        return {}
    from rlvr.data.curate import planted
    from rlvr.data.lm_data import pretrain_records
    from rlvr.data.synthetic import word_problems

    held_out = [p.question for p in word_problems(cfg.stage_eval.num_examples, cfg.run.seed, "held_out")]
    out = {"held_out": held_out}
    spec = next((s for s in cfg.curate.sources if s.generated == "pretrain"), None)
    if spec is not None:
        docs = [r["text"] for r in pretrain_records(cfg.pretrain, cfg.run.seed)]
        out["pretrain"] = planted(docs, held_out, spec.plant_duplicates, spec.plant_held_out, cfg.run.seed)
    return out


def run_data(cfg: RunConfig) -> StageResult:
    """Curation (`rlvr.data.curate`): trains nothing, so the model passes through; the kept documents (Parquet
    shards, column `text`) become the next stage's data."""
    from rlvr.data.curate import run_curation
    from rlvr.launch.cluster import check_curate_workers, connect

    connect(cfg)
    check_curate_workers(cfg.curate)
    data_dir, manifest = run_curation(cfg.curate, cfg.run.output_dir, generated_corpora(cfg))
    print(f"[rlvr] data: {manifest['documents_in']} documents in, {manifest['documents_out']} out ("
          + ", ".join(f"{s['step']} -{s['in'] - s['out']}" for s in manifest["steps"]) + f"); {data_dir}", flush=True)
    metrics = {"data/documents_in": float(manifest["documents_in"]),
               "data/documents_out": float(manifest["documents_out"])}
    metrics.update({f"data/removed_{s['step']}": float(s["in"] - s["out"]) for s in manifest["steps"]})
    return StageResult(cfg.model.path, str(data_dir), metrics)


StageRunner = Callable[[RunConfig], StageResult]
RUNNERS: dict[str, StageRunner] = {"data": run_data, "pretrain": run_pretrain, "sft": run_sft, "grpo": run_grpo,
                                   "rft": run_rft}
