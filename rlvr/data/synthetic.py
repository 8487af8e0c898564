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
ITEMS = ["apple", "pen", "book", "coin", "card", "ball", "shell", "stamp", "cup", "box"]
HELD_OUT_EVERY = 8
"""One question in this many (by hash) belongs to the held-out split."""
MAX_OPERAND = 20


@dataclass(frozen=True)
class WordProblem:
    question: str
    solution: str
    """Worked steps, one equation a line, then `#### N`."""
    answer: int


def is_held_out(question: str) -> bool:
    return zlib.crc32(question.encode()) % HELD_OUT_EVERY == 0


def _add(rng: random.Random, name: str, item: str) -> tuple[str, list[tuple[int, str, int]]]:
    a, b = rng.randint(1, MAX_OPERAND), rng.randint(1, MAX_OPERAND)
    return f"{name} has {a} {item}s. {name} gets {b} more. How many {item}s does {name} have now?", [(a, "+", b)]


def _sub(rng: random.Random, name: str, item: str) -> tuple[str, list[tuple[int, str, int]]]:
    a = rng.randint(2, MAX_OPERAND)
    b = rng.randint(1, a)
    return f"{name} has {a} {item}s. {name} gives away {b}. How many {item}s are left?", [(a, "-", b)]


def _mul(rng: random.Random, name: str, item: str) -> tuple[str, list[tuple[int, str, int]]]:
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    return f"{name} has {a} bags with {b} {item}s in each bag. How many {item}s does {name} have?", [(a, "*", b)]


def _two_step(rng: random.Random, name: str, item: str) -> tuple[str, list[tuple[int, str, int]]]:
    a, b = rng.randint(1, MAX_OPERAND), rng.randint(1, MAX_OPERAND)
    c = rng.randint(1, a + b)
    q = f"{name} has {a} {item}s, gets {b} more and then gives away {c}. How many {item}s does {name} have now?"
    return q, [(a, "+", b), (a + b, "-", c)]


TEMPLATES = (_add, _sub, _mul, _two_step)


def _apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def _problem(rng: random.Random) -> WordProblem:
    template = rng.choice(TEMPLATES)
    question, steps = template(rng, rng.choice(NAMES), rng.choice(ITEMS))
    lines = [f"{a} {op} {b} = {_apply(a, op, b)}" for a, op, b in steps]
    answer = _apply(*steps[-1])
    return WordProblem(question, "\n".join(lines) + f"\n#### {answer}", answer)


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


def arithmetic_documents(n: int, seed: int, lines_per_doc: int = 8) -> list[str]:
    """Pretraining text: documents of equations `a op b = c` over the word problems' number ranges."""
    rng = random.Random(f"arithmetic/{seed}")
    docs = []
    for _ in range(n):
        lines = []
        for _ in range(lines_per_doc):
            op = rng.choice("+-*")
            if op == "*":
                a, b = rng.randint(2, 9), rng.randint(2, 9)
            elif op == "-":
                a = rng.randint(1, 2 * MAX_OPERAND)
                b = rng.randint(0, a)
            else:
                a, b = rng.randint(0, MAX_OPERAND + 10), rng.randint(0, MAX_OPERAND + 10)
            lines.append(f"{a} {op} {b} = {_apply(a, op, b)}")
        docs.append("\n".join(lines))
    return docs


def tokenizer_corpus(seed: int) -> list[str]:
    """Text the default tokenizer is trained on: both kinds of generated data."""
    return arithmetic_documents(500, seed) + [f"{p.question}\n{p.solution}" for p in word_problems(2000, seed)]
