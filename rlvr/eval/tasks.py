"""The two eval tasks: where their data lives, how an item becomes a prompt, and which stop strings end an answer.

GSM8K follows lm-eval's gsm8k task (lm_eval/tasks/gsm8k/gsm8k.yaml): "Question: {q}\\nAnswer:" with few-shot
examples "Question: ...\\nAnswer: <full solution>" separated by a blank line, generation stopped at "Question:".
One difference: lm-eval draws its 5 examples at random (seed 1234) from the train split; we take the first N of the
train file, so prompts are stable across runs but not token-identical to lm-eval's.
MATH-500 is zero-shot with a \\boxed{} instruction, the format the math reward extracts first.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rlvr.config import ConfigError, FilterSpec
from rlvr.data.filters import apply_filters
from rlvr.data.records import HubSource, RecordSource, is_hub_name, open_source, take_keys

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Item:
    id: str
    question: str
    gold: str
    """GSM8K: the full reference solution ending "#### N"; MATH-500: the reference answer (LaTeX)."""


@dataclass(frozen=True)
class Task:
    name: str
    data: str
    """Default data file, relative to the shared data directory."""
    question_key: str
    gold_key: str
    metrics: tuple[str, ...]
    stop: tuple[str, ...]
    default_fewshot: int


TASKS = {
    "gsm8k": Task(
        "gsm8k", "gsm8k/test.jsonl", "question", "answer", ("strict", "flexible"),
        ("Question:", "</s>", "<|im_end|>"), 5,
    ),
    "math500": Task(
        "math500", "math500/test.jsonl", "problem", "answer", ("math",),
        ("Problem:", "</s>", "<|im_end|>"), 0,
    ),
}
GSM8K_TRAIN = "gsm8k/train.jsonl"
MATH_INSTRUCTION = "Solve the following problem. Put the final answer in \\boxed{}."


def shared_data_dir() -> Path:
    """$RLVR_DATA_DIR, else ../shared/data next to the repository (works from any working directory)."""
    return Path(os.environ.get("RLVR_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))


def default_data_path(task: Task) -> Path:
    return shared_data_dir() / task.data


def check_data_source(source: str) -> None:
    """Fail with one line before any model is loaded: a file or folder must exist, a hub name needs `datasets`."""
    if Path(source).exists():
        return
    if is_hub_name(source):
        try:
            import datasets  # noqa: F401
        except ImportError:
            raise ConfigError(f"--data {source!r}: not a file, and hub datasets need `pip install datasets`") from None
        return
    raise ConfigError(f"--data {source!r} does not exist")


def _source(source: str) -> RecordSource:
    if Path(source).exists():  # JSONL here; Parquet/CSV files, folders and save_to_disk folders through `datasets`
        return open_source(source, "--data")
    # a hub name (checked by check_data_source); the test split is what both tasks evaluate
    return HubSource(source, "main" if source.endswith("gsm8k") else None, split="test")


def load_items(task: Task, source: str, limit: int | None = None, filters: Sequence[FilterSpec] = ()) -> list[Item]:
    rows = list(_source(source).located())
    if not rows:
        raise ConfigError(f"--data {source!r} has no items")
    missing = [k for k in (task.question_key, task.gold_key) if k not in rows[0][1]]
    if missing:
        raise ConfigError(f"--data {source!r}: items lack {missing} (is it a {task.name} file?)")
    # ids as before the shared reader: the row's unique_id, else `<file stem>/<index>` (`test/<index>` for the hub)
    stem = Path(source).stem if Path(source).is_file() else "test"
    keyed = take_keys(rows, {"prompt": task.question_key, "answer": task.gold_key})
    records = [{"id": str(row.get("unique_id") or f"{stem}/{i}"), **rec}
               for i, ((_, row), rec) in enumerate(zip(rows, keyed))]
    records = apply_filters(records, filters, f"the {task.name} items")[:limit]
    return [Item(r["id"], r["prompt"], r["answer"]) for r in records]


def fewshot_items(task: Task, n: int) -> list[Item]:
    if n == 0:
        return []
    if task.name != "gsm8k":
        raise ConfigError(f"--num-fewshot {n}: few-shot examples exist only for gsm8k")
    path = shared_data_dir() / GSM8K_TRAIN
    if not path.is_file():
        raise ConfigError(f"--num-fewshot {n} needs the GSM8K train file {path}")
    return load_items(task, str(path), limit=n)


def build_prompt(task: Task, item: Item, fewshot: list[Item]) -> str:
    if task.name == "gsm8k":
        shots = "".join(f"Question: {ex.question}\nAnswer: {ex.gold}\n\n" for ex in fewshot)
        return f"{shots}Question: {item.question}\nAnswer:"
    return f"{MATH_INSTRUCTION}\n\nProblem: {item.question}\n\nSolution:"
