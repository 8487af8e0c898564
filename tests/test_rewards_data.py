"""Every real gold answer, written as a model would write it, scores correct.

GSM8K test: 1,319 golds x every prediction format. MATH-500: every answer against itself boxed. Run in-process in
the main thread under the worker's `deadline`, so a hang fails the test instead of stalling it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from rlvr.rewards.extract import extract_gsm8k_gold
from rlvr.rewards.math import math_reward
from rlvr.rewards.types import Verdict
from rlvr.rewards.worker import deadline

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
GSM8K_TEST = DATA / "gsm8k" / "test.jsonl"
MATH500 = DATA / "math500" / "test.jsonl"


def _rows(path: Path) -> list[dict]:
    if not path.is_file():
        pytest.skip(f"{path} is absent (the shared data directory is not mounted)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# Each takes the gold as an int and as written in the data ("1,450,000") and returns a model's completion.
FORMATS: dict[str, Callable[[int, str], str]] = {
    "boxed": lambda n, raw: f"Adding it up gives \\boxed{{{n}}}.",
    "boxed_dollar_commas": lambda n, raw: f"So the total is \\boxed{{\\${n:,}}}",
    "boxed_units": lambda n, raw: f"\\boxed{{{n} \\text{{ units}}}}",
    "answer_is_period": lambda n, raw: f"Let me compute. 3 + 4 = 7. The answer is {n}.",
    "answer_is_commas": lambda n, raw: f"The answer is: {n:,}",
    "hashes": lambda n, raw: f"2 * 3 = 6\n#### {n}",
    "hashes_as_written": lambda n, raw: f"#### {raw}",
    "last_number": lambda n, raw: f"First 2 + 2 = 4, then it comes to {n} in total.",
    "dollars": lambda n, raw: f"She ends up with ${n:,}.00.",
    "continuation": lambda n, raw: f"{n}\nQuestion: Tom has 5 apples. How many?",
}


def test_every_gsm8k_test_gold_in_every_format():
    rows = _rows(GSM8K_TEST)
    assert len(rows) == 1319
    failures = []
    with deadline(120.0):  # ~13k checks of pure regex work; a hang fails here instead of stalling the suite
        for row in rows:
            raw = row["answer"].rpartition("####")[2].strip()
            gold = extract_gsm8k_gold(row["answer"])
            assert gold is not None and gold == raw.replace(",", ""), raw
            for name, write in FORMATS.items():
                result = math_reward(row["question"], write(int(gold), raw), row["answer"])
                if result.verdict != Verdict.CORRECT:
                    failures.append((name, raw, result.reason))
    assert not failures, f"{len(failures)} of {len(rows) * len(FORMATS)} failed, e.g. {failures[:5]}"


def test_gsm8k_wrong_answers_are_incorrect():
    # The other direction: off-by-one in every format must not score correct (guards against an always-true scorer).
    rows = _rows(GSM8K_TEST)[:200]
    for row in rows:
        n = int(extract_gsm8k_gold(row["answer"]))
        for name, write in FORMATS.items():
            result = math_reward(row["question"], write(n + 1, f"{n + 1:,}"), row["answer"])
            assert result.verdict == Verdict.INCORRECT, (name, n, result.reason)


def test_every_math500_answer_verifies_against_itself_boxed():
    rows = _rows(MATH500)
    assert len(rows) == 500
    failures = []
    with deadline(120.0):  # math-verify's own timeouts are off (see rlvr.rewards.math); this bounds the test
        for row in rows:
            completion = f"{row['solution'][:40]} ... so the final answer is $\\boxed{{{row['answer']}}}$."
            result = math_reward(row["problem"], completion, row["answer"])
            if result.verdict != Verdict.CORRECT:
                failures.append((row["unique_id"], row["answer"], result.reason))
    assert not failures, f"{len(failures)} of 500 failed, e.g. {failures[:5]}"


def test_math500_solutions_score_correct():
    # The dataset's own worked solutions end in \boxed{answer}: scoring them is a realistic MATH-style check.
    rows = _rows(MATH500)
    with deadline(120.0):
        verdicts = [math_reward(r["problem"], r["solution"], r["answer"]).verdict for r in rows]
    assert verdicts.count(Verdict.CORRECT) == len(rows), {v: verdicts.count(v) for v in set(verdicts)}
