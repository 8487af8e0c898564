"""Any dataset in through `datasets` (rlvr.data.records.DatasetsSource): Parquet, CSV, JSONL, folders,
`save_to_disk` folders with splits, a slice, the hub offline as one line; GSM8K read this way equals the JSONL
reader's records."""

from __future__ import annotations

import json

import pytest

from rlvr.config import ConfigError
from rlvr.data.records import DatasetsSource, JsonlSource, open_source, take_keys
from tests.test_curation import DATA, needs_data

ROWS = [{"question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(12)]


@needs_data
def test_gsm8k_through_datasets_equals_the_jsonl_reader():
    path = str(DATA / "gsm8k" / "test.jsonl")
    ours = [r for _, r in JsonlSource(path).located()]
    theirs = [r for _, r in DatasetsSource(path).located()]
    assert len(ours) == 1319 and theirs == ours


def test_parquet_csv_folders_and_disk_datasets(tmp_path):
    import datasets

    ds = datasets.Dataset.from_list(ROWS)
    (tmp_path / "pq").mkdir()
    ds.select(range(6)).to_parquet(str(tmp_path / "pq" / "a.parquet"))
    ds.select(range(6, 12)).to_parquet(str(tmp_path / "pq" / "b.parquet"))
    ds.to_csv(str(tmp_path / "d.csv"), index=False)
    datasets.DatasetDict({"train": ds, "test": ds.select(range(3))}).save_to_disk(str(tmp_path / "disk"))
    want = take_keys([("", r) for r in ROWS], {"prompt": "question", "answer": "answer"})
    for path in (tmp_path / "pq", tmp_path / "d.csv", tmp_path / "disk"):
        got = take_keys(list(open_source(str(path), "x").located()), {"prompt": "question", "answer": "answer"})
        assert got == want, path
    test_split = list(open_source(str(tmp_path / "disk"), "x", split="test").located())
    assert [r["question"] for _, r in test_split] == [r["question"] for r in ROWS[:3]]
    assert len(list(open_source(str(tmp_path / "pq"), "x", limit=4).located())) == 4
    with pytest.raises(ConfigError, match="no split 'validation'"):
        list(open_source(str(tmp_path / "disk"), "x", split="validation").located())


def test_jsonl_keeps_its_line_numbers_and_a_missing_key_names_the_row(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS[:2]) + '{"question": "q"}\n')
    rows = list(open_source(str(path), "x").located())
    with pytest.raises(ConfigError, match=r"d.jsonl:3: needs the key\(s\) \['answer'\]"):
        take_keys(rows, {"prompt": "question", "answer": "answer"})


def test_hub_name_offline_is_one_line_naming_it(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="dataset 'someone/some-set': not a local path, and the Hugging Face hub"):
        open_source("someone/some-set", "--data")


@needs_data
def test_rlvr_eval_items_from_a_parquet_folder_equal_the_jsonl(tmp_path):
    import datasets

    from rlvr.eval import tasks

    src = DATA / "gsm8k" / "test.jsonl"
    rows = [r for _, r in JsonlSource(str(src)).located()][:20]
    (tmp_path / "pq").mkdir()
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "pq" / "test.parquet"))
    tasks.check_data_source(str(tmp_path / "pq"))
    task = tasks.TASKS["gsm8k"]
    from_pq = tasks.load_items(task, str(tmp_path / "pq"))
    from_jsonl = tasks.load_items(task, str(src), limit=20)
    assert len(from_pq) == 20
    assert [(i.question, i.gold) for i in from_pq] == [(i.question, i.gold) for i in from_jsonl]
