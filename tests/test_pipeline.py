"""Stage pipelines: every stage's config checked up front, stage hand-off, running stages alone, the embedded
default preset, and a pipeline end to end (`rlvr train configs/pipeline_tiny.yaml`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rlvr.config import ConfigError, load_config
from rlvr.launch.pipeline import PREVIOUS, plan, select, stage_config
from rlvr.launch.train_cli import default_preset

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "configs" / "pipeline_tiny.yaml"


@pytest.mark.parametrize("preset", [default_preset(), TINY, REPO / "configs" / "smollm2_sft_grpo.yaml"],
                         ids=lambda p: p.name)
def test_shipped_pipeline_presets_plan(preset):
    stages = plan(load_config(preset))
    assert [s.kind for s in stages][-1] == "grpo"
    assert all(s.cfg.checkpoint.save_final for s in stages)
    assert all(s.cfg.model.path == PREVIOUS for s in stages[1:])


def test_default_preset_is_the_full_pipeline():
    cfg = load_config(default_preset())
    assert [s.kind for s in cfg.stages] == ["data", "pretrain", "sft", "grpo"]
    assert cfg.model.random_init is not None and cfg.model.tokenizer == "synthetic_bpe"
    # the data stage curates the generated pretraining corpus, with planted copies and held-out leaks to remove
    (source,) = cfg.curate.sources
    assert source.generated == "pretrain" and source.plant_duplicates > 0 and source.plant_held_out > 0
    assert [e.generated for e in cfg.curate.decontaminate.eval_sets] == ["held_out"]


def test_stage_overrides_apply_to_their_stage_only(tmp_path):
    cfg = load_config(TINY, [f"run.output_dir={tmp_path}"])
    pre, sft, grpo = plan(cfg)
    assert (pre.cfg.learner.lr, grpo.cfg.learner.lr, grpo.cfg.run.steps) == (3e-3, 1e-4, 2)
    assert pre.cfg.run.output_dir == str(tmp_path / "pretrain")
    handed = stage_config(cfg, cfg.stages[1], "/x/hf")
    assert handed.model.path == "/x/hf" and handed.model.random_init is None


@pytest.mark.parametrize("overrides,match", [
    (["stages=[{kind: sft}, {kind: grpo, overrides: {learner: {lrr: 1}}}]"], "stage 'grpo': unknown config key"),
    (["stages=[{kind: sft}, {kind: sft}]"], "unique"),
    (["stages=[{kind: distill}]"], "stages.0.kind"),
    (["sft.batch_rows=3", "stages=[{kind: sft}]"], "batch_rows=3 is not divisible"),
])
def test_bad_stages_fail_before_anything_runs(overrides, match):
    with pytest.raises(ConfigError, match=match):
        plan(load_config(TINY, overrides))


def test_a_later_stage_alone_needs_its_predecessor_or_from(tmp_path):
    stages = plan(load_config(TINY, [f"run.output_dir={tmp_path}"]))
    with pytest.raises(ConfigError, match="run that stage first or pass --from"):
        select(stages, ["grpo"], None)
    with pytest.raises(ConfigError, match="--stage 'rl'"):
        select(stages, ["rl"], None)
    # after a data stage: its documents are what is missing, and both stages together is the way out
    stages = plan(load_config(default_preset(), [f"run.output_dir={tmp_path}"]))
    with pytest.raises(ConfigError, match=r"curated documents, which do not exist yet .* \(--stage data --stage pretrain\)"):
        select(stages, ["pretrain"], None)
    assert [s.name for s in select(stages, ["data", "pretrain"], None)[0]] == ["data", "pretrain"]


@pytest.mark.slow
def test_pipeline_end_to_end_hands_each_stage_to_the_next(tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "rlvr", "train", str(TINY), "--set", f"run.output_dir={out}"]
    env = {**os.environ, "RAY_ADDRESS": ""}
    proc = subprocess.run(args, capture_output=True, text=True, timeout=900, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    results = json.loads((out / "stage_accuracy.json").read_text())
    assert list(results) == ["pretrain", "sft", "grpo"]
    for name, prev in (("sft", "pretrain"), ("grpo", "sft")):
        started = yaml.safe_load((out / name / "config.yaml").read_text())["model"]["path"]
        assert started == results[prev]["export"] == results[name]["start"]
        assert (Path(started) / "model.safetensors").is_file() and (Path(started) / "chat_template.jinja").is_file()
    for name in results:
        assert 0.0 <= results[name]["accuracy"] <= 1.0 and results[name]["n"] == 24
        assert f"after {name}: held-out accuracy" in proc.stdout
    rows = [json.loads(line) for line in (out / "pretrain" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["lm/loss"] > 0 and r["throughput/tokens_per_s"] > 0 for r in rows)
    # each language-model stage has to learn, not only run: its loss falls over its 4 steps
    for name in ("pretrain", "sft"):
        losses = [json.loads(line)["lm/loss"] for line in (out / name / "metrics.jsonl").read_text().splitlines()]
        assert losses[-1] < losses[0], f"{name} loss did not fall: {losses}"
    assert (out / "grpo" / "metrics.jsonl").is_file()
    # any stage can run alone: the GRPO stage now finds the SFT export it starts from
    stages, start = select(plan(load_config(TINY, [f"run.output_dir={out}"])), ["grpo"], None)
    assert [s.name for s in stages] == ["grpo"] and start.model_path == results["sft"]["export"]
