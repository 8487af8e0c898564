"""The built-in math reward: GSM8K numbers exactly, MATH LaTeX answers through math-verify.

Routing by the reference: a GSM8K answer ("... #### 18"), a bare number ("18", "\\frac{3}{4}", "90^\\circ") or any
other LaTeX (MATH: intervals, tuples, matrices, radicals, `\\text{}`). Numbers are compared exactly as Fractions;
everything else goes to `math_verify.verify(gold, pred)` -- gold first, because verify is not symmetric.

This function sets no timeout of its own: math-verify's timeouts use `signal.alarm` and cancel any timer already
running (`alarm(0)` in its `finally`), so they are switched off here and the caller owns the deadline -- the
reward service's worker process arms one per sample in its main thread and kills the process as a backstop.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache
from typing import Literal

import math_verify

from rlvr.rewards.extract import (
    DEFAULT_STOP,
    NumberTooLong,
    cut_at_stop,
    extract_gsm8k_answer,
    extract_gsm8k_gold,
    last_boxed,
    number_from_latex,
    parse_number,
)
from rlvr.rewards.types import RewardResult, Verdict


class _DropTimeoutDisabledWarning(logging.Filter):
    # math-verify warns once that its timeout is off; here that is deliberate (the deadline is the worker's).
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_DropTimeoutDisabledWarning())

_SHOWN = 200  # characters of an extracted answer kept in a result


def math_reward(
    prompt: str,
    completion: str,
    reference: str,
    *,
    stop: Sequence[str] | None = None,
    mode: Literal["auto", "gsm8k", "math"] = "auto",
) -> RewardResult:
    """Score 1.0 if the completion's final answer equals the reference, else 0.0, with the verdict and why.

    `stop`: the completion is cut at the first of these before extraction (default: `extract.DEFAULT_STOP`, the
    markers of a hallucinated next question). `mode`: force the GSM8K (numeric) or MATH (LaTeX) path.
    """
    text = cut_at_stop(completion, DEFAULT_STOP if stop is None else stop)
    try:
        gold = None if mode == "math" else numeric_gold(reference)
        if gold is not None:
            return _score_numeric(text, gold)
    except NumberTooLong as exc:
        return RewardResult(0.0, Verdict.ERROR, reason=f"cannot compare {exc}")
    if mode == "gsm8k":
        return RewardResult(0.0, Verdict.ERROR, reason=f"reference {reference[:80]!r} has no numeric gold answer")
    return _score_latex(text, reference)


def numeric_gold(reference: str) -> str | None:
    """The gold number of a GSM8K answer or a reference that is one number; None for other LaTeX."""
    if "####" in reference:
        return extract_gsm8k_gold(reference)
    return number_from_latex(reference.strip())


def _score_numeric(text: str, gold: str) -> RewardResult:
    found, source = extract_gsm8k_answer(text)
    if found is None:
        return RewardResult(0.0, Verdict.NO_ANSWER, reason="no \\boxed{}, '####', 'answer is' or number found")
    if source in ("boxed_latex", "answer_latex"):  # \boxed{\frac{36}{2}}, "answer is $2^{10}$": compare symbolically
        return _verify(f"${gold}$", found, found)
    predicted, expected = parse_number(found), parse_number(gold)
    ok = predicted == expected
    relation = "==" if ok else "!="
    return RewardResult(
        float(ok),
        Verdict.CORRECT if ok else Verdict.INCORRECT,
        extracted=found,
        reason=f"{found} (from {source}) {relation} gold {gold}",
    )


def _score_latex(text: str, reference: str) -> RewardResult:
    boxed = last_boxed(text)
    return _verify(f"${reference}$", boxed, None if boxed is None else boxed[:_SHOWN], full_text=text)


def _verify(gold_latex: str, boxed: str | None, shown: str | None, full_text: str = "") -> RewardResult:
    gold = _parse_gold(gold_latex)
    if not gold:
        return RewardResult(0.0, Verdict.ERROR, reason=f"gold {gold_latex[:80]!r} cannot be parsed by math-verify")
    # A boxed answer is parsed on its own; without one, math-verify searches the text ($...$, "final answer is").
    pred_text = "\\boxed{" + boxed + "}" if boxed is not None else full_text
    pred = math_verify.parse(pred_text, parsing_timeout=None, raise_on_error=True)
    if not pred:
        return RewardResult(0.0, Verdict.NO_ANSWER, extracted=shown, reason="math-verify found no answer")
    shown = shown if shown is not None else str(pred[-1])[:_SHOWN]
    # raise_on_error: a failing sympy comparison must become an `error` verdict, not a silent "incorrect".
    ok = math_verify.verify(list(gold), pred, timeout_seconds=None, raise_on_error=True)
    relation = "equals" if ok else "differs from"
    return RewardResult(
        float(ok),
        Verdict.CORRECT if ok else Verdict.INCORRECT,
        extracted=shown,
        reason=f"{shown} {relation} gold {gold_latex[1:-1][:80]} (math-verify)",
    )


@lru_cache(maxsize=4096)
def _parse_gold(gold_latex: str) -> tuple:
    # Golds repeat G times per prompt and across epochs; parsed sympy objects are immutable, so caching is safe.
    return tuple(math_verify.parse(gold_latex, parsing_timeout=None, raise_on_error=True))
