"""The data seam: one record reader (a malformed line is one error naming file and line), one filter registry whose
filters apply to every stage's data and to eval items, and the typed stage result handed from stage to stage; and
pretraining/SFT logging through `MetricsLogger` (TensorBoard scalars read back from an SFT stage's event file)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rlvr.config import ConfigError, load_config
from rlvr.data.filters import apply_filters, record_text, register_filter
from rlvr.data.lm_data import build_rows, pretrain_texts, sft_conversations
from rlvr.data.prompts import load_examples
from rlvr.eval import tasks
from rlvr.launch.pipeline import plan, select, stage_config
from rlvr.launch.stages import StageResult

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "configs" / "pipeline_tiny.yaml"
GSM8K_TEST = tasks.default_data_path(tasks.TASKS["gsm8k"])

SEEN: list[list[dict]] = []
"""Every list the test filter was given, in order."""


@register_filter("test_without_word")
def without_word(word: str):
    def keep(records):
        SEEN.append(records)
        return [r for r in records if word not in record_text(r)]

    return keep


def test_one_registered_filter_applies_to_grpo_prompts_sft_chats_and_eval_items():
    cfg = load_config(TINY, ["data.filters=[{name: test_without_word, word: apple}]"])
    SEEN.clear()
    prompts = load_examples(cfg.data, seed=0)
    chats = sft_conversations(cfg.sft, 0, cfg.data.filters)
    items = tasks.load_items(tasks.TASKS["gsm8k"], str(GSM8K_TEST), limit=50, filters=cfg.data.filters)
    assert len(SEEN) == 3  # one call per dataset, each on the whole list
    # each saw its canonical shape, with the word present before and gone after
    assert set(SEEN[0][0]) == {"prompt", "answer"} and set(SEEN[1][0]) == {"messages"}
    assert set(SEEN[2][0]) == {"id", "prompt", "answer"}
    for seen, kept in ((SEEN[0], [p.prompt for p in prompts]), (SEEN[1], [str(c) for c in chats]),
                       (SEEN[2], [i.question for i in items])):
        assert any("apple" in record_text(r) for r in seen) and 0 < len(kept) < len(seen)
        assert not any("apple" in text for text in kept)
    assert len(items) == 50  # --limit counts items after the filters
    unfiltered = tasks.load_items(tasks.TASKS["gsm8k"], str(GSM8K_TEST), limit=50)
    assert [i.id for i in unfiltered] == [f"test/{n}" for n in range(50)]  # ids as before the shared reader


def test_filters_apply_to_packed_sft_rows(tmp_path):
    from rlvr.data.tokenizer_train import synthetic_math_tokenizer

    cfg = load_config(TINY, ["data.filters=[{name: exact_dedup}, {name: test_without_word, word: apple}]"])
    tok = synthetic_math_tokenizer(0)
    rows = build_rows("sft", cfg.sft, tok, 0, cfg.data.filters)
    text = "".join(tok.decode(r.input_ids_L.tolist()) for r in rows)
    assert "apple" not in text and "pen" in text


def test_exact_dedup_keeps_the_first_of_identical_records():
    records = [{"text": "a b"}, {"text": " a b\n"}, {"text": "c"}, {"text": "a b"}]
    cfg = load_config(TINY, ["data.filters=[{name: exact_dedup}]"])
    assert apply_filters(records, cfg.data.filters, "docs") == [{"text": "a b"}, {"text": "c"}]


@pytest.mark.parametrize("overrides,match", [
    (["data.filters=[{name: no_such_filter}]"], r"stage 'pretrain': data.filters\[0\]: unknown filter 'no_such"),
    (["data.filters=[{name: test_without_word, wrd: x}]"], r"data.filters\[0\] \(test_without_word\): bad arg"),
    (["data.filters=[{name: 'no.such.module:f'}]"], "does not import"),
])
def test_a_bad_filter_fails_when_the_pipeline_is_planned(overrides, match):
    with pytest.raises(ConfigError, match=match):
        plan(load_config(TINY, overrides))


def test_filters_removing_everything_is_one_error():
    cfg = load_config(TINY, ["data.filters=[{name: test_without_word, word: '#'}]"])
    with pytest.raises(ConfigError, match="removed every record of the SFT chats"):
        sft_conversations(cfg.sft, 0, cfg.data.filters)


def _bad_jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "q1", "answer": "1", "text": "t", "problem": "p"}\n\n{"question": "q2", \n')
    return path


@pytest.mark.parametrize("reader", ["grpo", "pretrain", "sft", "eval"])
def test_a_malformed_line_names_file_and_line_in_every_reader(tmp_path, reader):
    path = _bad_jsonl(tmp_path)
    cfg = load_config(TINY, ["data.source=jsonl", f"data.path={path}", "pretrain.source=jsonl",
                             f"pretrain.path={path}", "sft.source=jsonl", f"sft.path={path}"])
    read = {"grpo": lambda: load_examples(cfg.data, 0),
            "pretrain": lambda: pretrain_texts(cfg.pretrain, 0),
            "sft": lambda: sft_conversations(cfg.sft, 0),
            "eval": lambda: tasks.load_items(tasks.TASKS["gsm8k"], str(path))}[reader]
    what = {"grpo": "data.path", "pretrain": "pretrain.path", "sft": "sft.path", "eval": "--data"}[reader]
    with pytest.raises(ConfigError, match=f"^{re.escape(what)} {re.escape(str(path))}:3: not valid JSON"):
        read()


def test_a_missing_key_names_file_and_line(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"question": "q1", "answer": "1"}\n{"question": "q2"}\n')
    cfg = load_config(TINY, ["data.source=jsonl", f"data.path={path}"])
    with pytest.raises(ConfigError, match=re.escape(f"data.path {path}:2: needs the key(s) ['answer']")):
        load_examples(cfg.data, 0)


def test_a_later_stage_alone_starts_from_its_predecessors_stage_result(tmp_path):
    stages = plan(load_config(TINY, [f"run.output_dir={tmp_path}"]))
    model = tmp_path / "somewhere" / "hf"
    (tmp_path / "sft").mkdir()
    StageResult(str(model), None, {"lm/loss": 1.5}).save(tmp_path / "sft")
    chosen, start = select(stages, ["grpo"], None)
    assert [s.name for s in chosen] == ["grpo"] and start == StageResult(str(model), None, {"lm/loss": 1.5})


def test_data_a_stage_wrote_is_the_next_stages_data(tmp_path):
    cfg = load_config(TINY)
    grpo = stage_config(cfg, cfg.stages[2], "/m/hf", str(tmp_path / "curated.jsonl"))
    sft = stage_config(cfg, cfg.stages[1], "/m/hf", str(tmp_path / "chats.jsonl"))
    assert (grpo.data.source, grpo.data.path) == ("jsonl", str(tmp_path / "curated.jsonl"))
    assert (sft.sft.source, sft.sft.path) == ("jsonl", str(tmp_path / "chats.jsonl"))
    assert stage_config(cfg, cfg.stages[2], "/m/hf").data.source == "word_problems"


@pytest.mark.slow
def test_sft_stage_logs_tensorboard_scalars_and_hands_on_a_stage_result(ray_cluster, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from rlvr.launch.pipeline import run_pipeline

    cfg = load_config(TINY, [f"run.output_dir={tmp_path}", "stages=[{kind: sft}]", "stage_eval.enabled=false",
                             "logging.tensorboard=true", "logging.progress_bar=false", "learner.num_actors=1",
                             "sft.steps=3", "sft.batch_rows=2", "sft.num_examples=40"])
    run_pipeline(cfg)
    rows = [json.loads(line) for line in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()]
    events = EventAccumulator(str(tmp_path / "sft" / "tensorboard"))
    events.Reload()
    for key in ("lm/loss", "throughput/tokens_per_s"):
        scalars = events.Scalars(key)
        assert [e.step for e in scalars] == [r["step"] for r in rows] == [0, 1, 2], key
        assert [e.value for e in scalars] == pytest.approx([r[key] for r in rows], rel=1e-6), key
        assert all(e.value > 0 for e in scalars), key
    result = StageResult.load(tmp_path / "sft")
    assert result is not None and (Path(result.model_path) / "config.json").is_file()
    assert result.metrics["lm/loss"] == pytest.approx(rows[-1]["lm/loss"])


def test_rlvr_eval_rejects_a_bad_filter_in_one_line(capsys):
    from rlvr.cli import main as rlvr_main

    assert rlvr_main(["eval", "--model", str(REPO), "--data", str(GSM8K_TEST), "--filter", "{name: nope}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--filter[0]: unknown filter 'nope'" in err and len(err.splitlines()) == 1
