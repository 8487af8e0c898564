"""Reward extraction and verdicts, field by field (score, verdict, extracted, reason), written from the mutants of
rlvr/rewards/extract.py and math.py that survived the table tests (`python scripts/mutation.py core`)."""

from __future__ import annotations

import logging
import signal
from fractions import Fraction

import pytest

from rlvr.rewards import extract
from rlvr.rewards.extract import (
    MAX_DIGITS,
    NumberTooLong,
    cut_at_stop,
    extract_gsm8k_answer,
    extract_gsm8k_gold,
    format_number,
    last_boxed,
    number_from_latex,
    parse_number,
)
from rlvr.rewards.math import math_reward
from rlvr.rewards.types import Verdict

# -- extraction ---------------------------------------------------------------------------------------------------


def test_cut_at_stop_takes_the_earliest_marker_whatever_their_order():
    text = "18\nQ: next\nQuestion: more\nQ: again"
    assert cut_at_stop(text, ("\nQ:", "\nQuestion:")) == "18"
    assert cut_at_stop(text, ("\nQuestion:", "\nQ:")) == "18"
    assert cut_at_stop(text, ("\nQuestion:",)) == "18\nQ: next"
    assert cut_at_stop(text, ("",)) == text  # an empty marker cuts nothing
    assert cut_at_stop(text, ()) == text


def test_parse_number_digit_limit_and_malformed_input():
    assert parse_number("9" * MAX_DIGITS) == int("9" * MAX_DIGITS)  # at the limit: still a number
    with pytest.raises(NumberTooLong, match=f"a number with {MAX_DIGITS + 1:,} digits \\(limit {MAX_DIGITS:,}\\)"):
        parse_number("9" * (MAX_DIGITS + 1))
    assert parse_number("7" + " " * MAX_DIGITS) == 7  # long, but one digit: not too long
    assert parse_number("3/0") is None
    assert parse_number("3/4") == Fraction(3, 4)
    assert parse_number("18X") is None and parse_number("18.") == 18


def test_format_number_terminating_and_repeating_decimals():
    assert format_number(Fraction(1, 5)) == "0.2"
    assert format_number(Fraction(-3, 20)) == "-0.15"
    assert format_number(Fraction(1, 6)) == "1/6"
    # terminates, but not within 15 decimal places: the exact fraction, not a rounded decimal
    assert format_number(Fraction(1, 2**60)) == f"1/{2**60}"


def test_gsm8k_gold_is_the_first_line_after_the_last_marker():
    assert extract_gsm8k_gold("x #### 1 #### 2") == "2"
    assert extract_gsm8k_gold("work\n#### 18\nnote\nmore") == "18"
    assert extract_gsm8k_gold("#### 1 / 2\nfoo") == "0.5"
    assert extract_gsm8k_gold("no marker 18") is None


def test_number_from_latex_fractions_and_assignments():
    assert number_from_latex("x = 5") == "5"
    assert number_from_latex("\\frac{3}{4}") == "0.75"
    assert number_from_latex("-\\dfrac{3}{4}") == "-0.75"
    assert number_from_latex("\\frac{3}{0}") is None
    assert number_from_latex("\\sqrt{2}") is None


def test_last_boxed_matches_braces_from_the_first_box():
    assert last_boxed("} { \\boxed{\\frac{1}{2}} and \\boxed{3") == "\\frac{1}{2}"
    assert last_boxed("none here") is None


def test_extract_gsm8k_answer_reports_its_source():
    assert extract_gsm8k_answer("so \\boxed{18}") == ("18", "boxed")
    assert extract_gsm8k_answer("so \\boxed{\\sqrt{2}}") == ("\\sqrt{2}", "boxed_latex")
    assert extract_gsm8k_answer("12 then #### 18") == ("18", "####")
    assert extract_gsm8k_answer("12, so the answer is 18 today") == ("18", "answer_is")
    assert extract_gsm8k_answer("I got 12 then 18 apples") == ("18", "last_number")
    assert extract_gsm8k_answer("no numbers") == (None, "none")


# -- verdicts -----------------------------------------------------------------------------------------------------


def test_numeric_verdicts_with_their_reasons():
    right = math_reward("q", "The answer is 18.", "#### 18")
    assert (right.score, right.verdict, right.extracted) == (1.0, Verdict.CORRECT, "18")
    assert right.reason == "18 (from answer_is) == gold 18"
    wrong = math_reward("q", "The answer is 17.", "#### 18")
    assert (wrong.score, wrong.verdict, wrong.extracted) == (0.0, Verdict.INCORRECT, "17")
    assert wrong.reason == "17 (from answer_is) != gold 18"
    none = math_reward("q", "no idea", "#### 18")
    assert (none.score, none.verdict, none.extracted) == (0.0, Verdict.NO_ANSWER, None)
    assert none.reason == "no \\boxed{}, '####', 'answer is' or number found"


def test_boxed_latex_against_a_numeric_gold_goes_to_math_verify():
    result = math_reward("q", "so \\boxed{\\sqrt{324}}", "#### 18")
    assert (result.score, result.verdict, result.extracted) == (1.0, Verdict.CORRECT, "\\sqrt{324}")
    assert result.reason == "\\sqrt{324} equals gold 18 (math-verify)"
    # shown as written in the box (math-verify's own string would lose the spaces)
    spaced = math_reward("q", "so \\boxed{ 9\\times 2 }", "#### 18")
    assert spaced.verdict == Verdict.CORRECT and spaced.extracted == " 9\\times 2 "


def test_too_long_numbers_and_missing_numeric_gold_are_errors():
    long = math_reward("q", "The answer is " + "9" * (MAX_DIGITS + 1), "#### 18")
    assert (long.score, long.verdict) == (0.0, Verdict.ERROR)
    assert long.reason == f"cannot compare a number with {MAX_DIGITS + 1:,} digits (limit {MAX_DIGITS:,})"
    reference = "\\sqrt{2} + " * 10  # longer than the 80 characters a reason quotes
    forced = math_reward("q", "\\boxed{1}", reference, mode="gsm8k")
    assert (forced.score, forced.verdict) == (0.0, Verdict.ERROR)
    assert forced.reason == f"reference {reference[:80]!r} has no numeric gold answer"


def test_latex_verdicts_with_their_reasons():
    ref = "\\frac{\\sqrt{3}}{2}"
    right = math_reward("q", "thus \\boxed{\\frac{\\sqrt{3}}{2}}", ref)
    assert (right.score, right.verdict, right.extracted) == (1.0, Verdict.CORRECT, "\\frac{\\sqrt{3}}{2}")
    assert right.reason == f"\\frac{{\\sqrt{{3}}}}{{2}} equals gold {ref} (math-verify)"
    wrong = math_reward("q", "thus \\boxed{\\sqrt{2}}", ref)
    assert (wrong.score, wrong.verdict, wrong.extracted) == (0.0, Verdict.INCORRECT, "\\sqrt{2}")
    assert wrong.reason == f"\\sqrt{{2}} differs from gold {ref} (math-verify)"
    nothing = math_reward("q", "no idea at all", ref)
    assert (nothing.score, nothing.verdict, nothing.extracted) == (0.0, Verdict.NO_ANSWER, None)
    assert nothing.reason == "math-verify found no answer"
    # mode=math sends even a numeric reference to math-verify
    forced = math_reward("q", "\\boxed{18}", "18", mode="math")
    assert forced.verdict == Verdict.CORRECT and forced.reason == "18 equals gold 18 (math-verify)"


def test_unboxed_latex_answer_is_found_by_math_verify_and_shown():
    """Without a box math-verify searches the text; the result shows what it found (its last parse)."""
    result = math_reward("q", "We get $x = \\pi/2$", "\\frac{\\pi}{2}")
    assert result.verdict == Verdict.CORRECT
    assert result.extracted == "x = \\pi/2" and result.reason == "x = \\pi/2 equals gold \\frac{\\pi}{2} (math-verify)"


def test_math_verify_does_not_cancel_the_callers_deadline():
    """The worker's soft deadline is an ITIMER_REAL; math-verify's own timeouts (signal.alarm) would reset it."""
    previous = signal.signal(signal.SIGALRM, lambda *_: None)
    signal.setitimer(signal.ITIMER_REAL, 100.0)
    try:
        math_reward("q", "thus \\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}")
        math_reward("q", "so \\boxed{\\sqrt{324}}", "#### 18")
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert remaining > 50.0


def test_only_math_verifys_timeout_disabled_warning_is_dropped():
    logger = logging.getLogger("math_verify.grader")
    make = lambda msg: logging.LogRecord("math_verify.grader", logging.WARNING, __file__, 1, msg, None, None)  # noqa: E731
    assert not logger.filter(make("Timeout is disabled as timeout_seconds is None"))
    assert logger.filter(make("something else went wrong"))
    assert extract.DEFAULT_STOP[0] == "\nQuestion:"
