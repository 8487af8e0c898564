"""The generated data of the embedded default: deterministic, correct solutions, a disjoint held-out split."""

from __future__ import annotations

from rlvr.data.synthetic import arithmetic_documents, word_problems
from rlvr.rewards.math import math_reward


def test_deterministic_and_held_out_is_disjoint():
    train = word_problems(3000, seed=0)
    assert train == word_problems(3000, seed=0)
    held_out = word_problems(500, seed=0, split="held_out")
    assert len({p.question for p in train}) == 3000
    assert not {p.question for p in train} & {p.question for p in held_out}
    assert not {p.question for p in word_problems(3000, seed=1)} & {p.question for p in held_out}


def test_solutions_are_worked_and_score_as_correct():
    for p in word_problems(200, seed=0) + word_problems(50, seed=0, split="held_out"):
        *steps, final = p.solution.split("\n")
        assert final == f"#### {p.answer}" and steps
        for step in steps:  # every step is a true equation
            lhs, rhs = step.split(" = ")
            a, op, b = lhs.split()
            assert {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op] == int(rhs)
        assert math_reward(p.question, p.solution, str(p.answer)).score == 1.0


def test_pretraining_text_has_no_questions_or_answer_markers():
    text = "\n".join(arithmetic_documents(200, seed=0))
    assert "?" not in text and "####" not in text and " = " in text
