"""Generated data for the embedded default pipeline: arithmetic text to pretrain on, and word problems with
step-by-step solutions ending `#### N` for SFT, RL and evaluation.

Everything is a pure function of (n, seed). Word problems are split into train and held-out by a stable hash of the
question text, so the held-out set is disjoint from every training set whatever the seeds and sizes.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from typing import Literal

NAMES = ["Tom", "Ann", "Sam", "Mia", "Ben", "Eva", "Leo", "Zoe", "Max", "Ivy", "Dan", "Amy"]
ITEMS = ["apple", "pen", "book", "coin", "card", "ball", "shell", "stamp", "cup", "hat"]
HELD_OUT_EVERY = 8
"""One question in this many (by hash) belongs to the held-out split."""
MAX_OPERAND = 9
"""Single-digit operands keep the arithmetic facts (about 250) few enough for a tiny model to learn in a minute of
CPU, while leaving a share of problems unsolved after SFT for RL to win."""


@dataclass(frozen=True)
class WordProblem:
    question: str
    solution: str
    """Worked steps, one equation a line, then `#### N`."""
    answer: int


Step = tuple[int, str, int]


def is_held_out(question: str) -> bool:
    return zlib.crc32(question.encode()) % HELD_OUT_EVERY == 0


def _apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def _operands(rng: random.Random, kind: str) -> list[Step]:
    """The steps of one problem of each kind: add, subtract, multiply, add-then-subtract."""
    n = MAX_OPERAND
    if kind == "add":
        return [(rng.randint(1, n), "+", rng.randint(1, n))]
    if kind == "sub":
        a = rng.randint(2, 2 * n)
        return [(a, "-", rng.randint(1, min(a, n)))]
    if kind == "mul":
        return [(rng.randint(2, 6), "*", rng.randint(2, 6))]
    a, b = rng.randint(1, n), rng.randint(1, n)
    return [(a, "+", b), (a + b, "-", rng.randint(1, min(a + b, n)))]


QUESTIONS = {
    "add": "{name} has {a} {item}s and gets {b} more. How many {item}s does {name} have?",
    "sub": "{name} has {a} {item}s and gives away {b}. How many {item}s are left?",
    "mul": "{name} has {a} bags with {b} {item}s in each. How many {item}s is that?",
    "two": "{name} has {a} {item}s, gets {b} more and gives away {c}. How many {item}s are left?",
}
STORIES = {  # the same situations told as worked stories: pretraining text, never in question-and-answer form
    "add": ("{name} had {a} {item}s and got {b} more.", "so {name} had {r} {item}s."),
    "sub": ("{name} had {a} {item}s and gave away {b}.", "so {r} {item}s were left."),
    "mul": ("{name} had {a} bags with {b} {item}s in each.", "so {name} had {r} {item}s."),
    "two": ("{name} had {a} {item}s, got {b} more and gave away {c}.", "so {r} {item}s were left."),
}


def _situation(rng: random.Random) -> tuple[str, list[Step], dict]:
    kind = rng.choice(("add", "sub", "mul", "two"))
    steps = _operands(rng, kind)
    slots = {"name": rng.choice(NAMES), "item": rng.choice(ITEMS), "a": steps[0][0], "b": steps[0][2],
             "c": steps[-1][2], "r": _apply(*steps[-1])}
    return kind, steps, slots


def _problem(rng: random.Random) -> WordProblem:
    kind, steps, slots = _situation(rng)
    lines = [f"{a} {op} {b} = {_apply(a, op, b)}" for a, op, b in steps]
    return WordProblem(QUESTIONS[kind].format(**slots), "\n".join(lines) + f"\n#### {slots['r']}", slots["r"])


def word_problems(n: int, seed: int, split: Literal["train", "held_out"] = "train") -> list[WordProblem]:
    """n distinct problems of the split; deterministic in (n, seed, split)."""
    rng = random.Random(f"word_problems/{seed}/{split}")
    want_held_out = split == "held_out"
    out: list[WordProblem] = []
    seen: set[str] = set()
    for _ in range(200 * n + 10_000):  # bounded: the question space is finite
        p = _problem(rng)
        if is_held_out(p.question) == want_held_out and p.question not in seen:
            seen.add(p.question)
            out.append(p)
            if len(out) == n:
                return out
    raise ValueError(f"cannot generate {n} distinct {split} word problems")


def arithmetic_documents(n: int, seed: int, lines_per_doc: int = 6) -> list[str]:
    """Pretraining text: equations `a op b = c` mixed with short stories worked out with the same equations."""
    rng = random.Random(f"arithmetic/{seed}")
    docs = []
    for _ in range(n):
        lines = []
        for _ in range(lines_per_doc):
            kind, steps, slots = _situation(rng)
            equations = [f"{a} {op} {b} = {_apply(a, op, b)}" for a, op, b in steps]
            if rng.random() < 0.5:
                story, ending = STORIES[kind]
                lines.append(f"{story.format(**slots)} {' and '.join(equations)}, {ending.format(**slots)}")
            else:
                lines.extend(equations)
        docs.append("\n".join(lines))
    return docs


def tokenizer_corpus(seed: int) -> list[str]:
    """Text the default tokenizer is trained on: both kinds of generated data."""
    return arithmetic_documents(500, seed) + [f"{p.question}\n{p.solution}" for p in word_problems(2000, seed)]
