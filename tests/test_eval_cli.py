"""`rlvr eval` end to end on a tiny random model (saved to tmp_path) and 5 GSM8K test items, then `--compare`.

A random model never solves GSM8K, so the second run re-labels the gold answers with what the first run's sampled
outputs contain (same seed, so the same outputs): those items must then score correct, and the comparison of the
two files must find exactly them.
"""

import json

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from rlvr.cli import main as rlvr_main
from rlvr.eval import gsm8k
from rlvr.eval.passk import pass_at_k
from rlvr.eval.stats import wilson_interval
from rlvr.eval.tasks import TASKS, default_data_path
from rlvr.model_io import build_char_tokenizer

GSM8K_TEST = default_data_path(TASKS["gsm8k"])
ARGS = ["--task", "gsm8k", "--limit", "5", "--num-fewshot", "0", "--samples", "2", "--temperature", "1.0",
        "--max-new-tokens", "24", "--seed", "7"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny")
    tok = build_char_tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, max_position_embeddings=1024, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def _lines(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


@pytest.fixture(scope="module")
def first_run(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("run_a") / "a.jsonl"
    assert rlvr_main(["eval", "--model", tiny_model, *ARGS, "--out", str(out)]) == 0
    return out


def test_items_have_every_field_and_rescore(first_run):
    gold_rows = [json.loads(line) for line in open(GSM8K_TEST, encoding="utf-8")][:5]
    items = _lines(first_run)
    assert [it["question"] for it in items] == [r["question"] for r in gold_rows]
    for item, row in zip(items, gold_rows):
        assert item["gold"] == row["answer"].split("#### ")[-1].replace(",", "")
        assert item["n_samples"] == 2 and len(item["samples"]) == 2
        assert item["output"] == item["samples"][0]["output"]
        for metric in ("strict", "flexible"):
            rescored = [gsm8k.score(s["output"], row["answer"], metric) for s in item["samples"]]
            assert [s["extracted"][metric] for s in item["samples"]] == [r.extracted for r in rescored]
            assert [s["verdict"][metric] for s in item["samples"]] == [r.verdict for r in rescored]
            assert item["n_correct"][metric] == sum(r.correct for r in rescored)
    # Sampling at temperature 1 from a random char model writes digits: flexible-extract must find some.
    assert any(s["extracted"]["flexible"] for it in items for s in it["samples"])


def test_summary_matches_items(first_run):
    items = _lines(first_run)
    summary = json.loads(first_run.with_name("a.summary.json").read_text())
    assert summary["items"] == 5 and summary["samples"] == 2 and summary["settings"]["seed"] == 7
    for metric in ("strict", "flexible"):
        counts = [it["n_correct"][metric] for it in items]
        assert summary[metric]["accuracy"] == pytest.approx(sum(counts) / 10)
        assert summary[metric]["ci95"] == pytest.approx(list(wilson_interval(sum(counts) / 2, 5)))
        assert summary[metric]["pass@k"]["2"] == pytest.approx(sum(pass_at_k(2, c, 2) for c in counts) / 5)
        assert summary[metric]["mixed_fraction"] == pytest.approx(sum(c == 1 for c in counts) / 5)


def test_relabelled_gold_scores_correct_and_compare_finds_it(first_run, tiny_model, tmp_path, capsys):
    # Gold answers set to what sample 0 extracted: the same seed reproduces the outputs, so those items are correct.
    items = _lines(first_run)
    rows = [json.loads(line) for line in open(GSM8K_TEST, encoding="utf-8")][:5]
    relabelled = [i for i, it in enumerate(items) if it["extracted"]["flexible"]]
    assert relabelled, "no first sample had a number to relabel with"
    for i in relabelled:
        rows[i]["answer"] = "#### " + items[i]["extracted"]["flexible"]
    data = tmp_path / "test.jsonl"  # same file stem, so item ids pair with the first run's
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out_b = tmp_path / "b.jsonl"
    assert rlvr_main(["eval", "--model", tiny_model, *ARGS, "--data", str(data), "--out", str(out_b)]) == 0
    items_b = _lines(out_b)
    assert [it["output"] for it in items_b] == [it["output"] for it in items]
    assert [it["verdict"]["flexible"] == "correct" for it in items_b] == [i in relabelled for i in range(5)]

    capsys.readouterr()
    report = tmp_path / "cmp.json"
    assert rlvr_main(["eval", "--compare", str(first_run), str(out_b), "--resamples", "500", "--out", str(report)]) == 0
    assert "McNemar" in capsys.readouterr().out
    flex = json.loads(report.read_text())["flexible"]
    n = len(relabelled)
    assert flex["mcnemar"] == {"a_only": 0, "b_only": n, "p_value": pytest.approx(min(1.0, 2 * 0.5**n))}
    assert flex["accuracy_a"] == 0.0 and flex["accuracy_b"] > 0.0
    assert flex["diff_b_minus_a"] == pytest.approx(flex["accuracy_b"] - flex["accuracy_a"])


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--task", "gsm8k"], "needs --model"),
        (["--model", "/no/such/model"], "does not exist"),
        (["--model", "MODEL", "--samples", "0"], "--samples must be >= 1"),
        (["--model", "MODEL", "--data", "/no/such.jsonl"], "does not exist"),
        (["--model", "MODEL", "--samples", "4", "--temperature", "0"], "identical greedy"),
        (["--compare", "/no/a.jsonl", "/no/b.jsonl"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_exit_2(argv, message, tiny_model, capsys):
    argv = [tiny_model if a == "MODEL" else a for a in argv]
    assert rlvr_main(["eval", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
