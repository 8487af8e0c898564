"""Table of (prediction, gold, expected verdict) through `math_reward`, including the bugs of public graders.

Run in-process (the worker's `deadline` bounds each case), so a regression in extraction shows up as one named row.
"""

from __future__ import annotations

import pytest

from rlvr.rewards.extract import extract_gsm8k_gold, extract_gsm8k_strict, extract_last_number
from rlvr.rewards.math import math_reward
from rlvr.rewards.types import Verdict
from rlvr.rewards.worker import deadline

C, I, N, E = Verdict.CORRECT, Verdict.INCORRECT, Verdict.NO_ANSWER, Verdict.ERROR
GSM = "She sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\nShe makes 9 * 2 = $<<9*2=18>>18.\n#### 18"

CASES: list[tuple[str, str, Verdict]] = [
    # --- GSM8K: "The answer is N" and the trailing-period bug
    ("The answer is 72.", "#### 72", C),
    ("The answer is 72", "#### 72", C),
    ("The answer is: 72", "#### 72", C),
    ("The final answer is 72!", "#### 72", C),
    ("**Answer:** 72", "#### 72", C),
    ("answer: **72**", "#### 72", C),
    ("The answer is 72.", "#### 27", I),
    ("#### -\n4", "#### -4", C),  # whitespace inside a number other than a space raised in Fraction (H100 run)
    ("The answer is -\t4.", "#### -4", C),
    ("The answer is 72. Then again, 5 more would be 77.", "#### 72", C),  # the stated answer beats the last number
    ("The answer is $18.", GSM, C),
    ("The answer is \\$18.00.", GSM, C),
    ("The answer is 18...", GSM, C),
    # --- GSM8K: "#### N"
    ("9 * 2 = 18\n#### 18", GSM, C),
    ("####18", GSM, C),
    ("#### 18.", GSM, C),
    ("#### $18", GSM, C),
    ("#### 18.00", GSM, C),
    ("#### 17", GSM, I),
    ("#### 18\nCheck: 18 / 2 = 9", GSM, C),  # the marked answer, not the check written after it
    ("#### 17\n#### 18", GSM, C),  # the last marker wins
    # --- GSM8K: \boxed{} (and the raw-string "\b" bug: r"\boxed" is a word boundary + "oxed")
    ("So she makes \\boxed{18} dollars.", GSM, C),
    ("answer\\boxed{18}", GSM, C),
    ("\\boxed{ 18 }", GSM, C),
    ("\\boxed{18.}", GSM, C),
    ("\\fbox{18}", GSM, C),
    ("\\boxed {18}", GSM, C),
    ("oxed{18} is what a broken regex would read; the total is 5", GSM, I),
    ("\\boxed{17} no wait, \\boxed{18}", GSM, C),
    ("\\boxed{18} no wait, \\boxed{17}", GSM, I),
    ("\\boxed{\\$18}", GSM, C),
    ("\\boxed{18 \\text{ dollars}}", GSM, C),
    ("\\boxed{\\text{\\$}18}", GSM, C),
    ("\\boxed{18\\,\\text{dollars}}", GSM, C),
    ("\\boxed{x = 18}", GSM, C),
    ("\\boxed{\\frac{36}{2}}", GSM, C),
    ("\\boxed{36/2}", GSM, C),
    ("\\boxed{9 \\cdot 2}", GSM, C),  # not a plain number: decided by math-verify
    ("\\boxed{17}", GSM, I),
    ("\\boxed{\\text{eighteen}}", GSM, I),
    ("\\boxed{}", GSM, N),
    ("\\boxed{18", GSM, C),  # unclosed box: falls back to the last number
    # --- GSM8K: last number, dollars, thousands separators, percent, units
    ("She makes 18 dollars every day.", GSM, C),
    ("She makes $18 every day.", GSM, C),
    ("She makes 18 dollars. That is 2 per egg.", GSM, I),
    ("Total: $1,600.", "#### 1,600", C),
    ("Total: 1600 dollars", "#### 1,600", C),
    ("Total: 1,600.00", "#### 1600", C),
    ("#### 1,450,000", "#### 1,450,000", C),
    ("The answer is 1450000", "#### 1,450,000", C),
    ("The answer is 1,450,001", "#### 1,450,000", I),
    ("The price is $1,234.50", "1234.5", C),
    ("It grew by 25%.", "#### 25", C),
    ("\\boxed{25\\%}", "#### 25", C),
    ("He runs 60 km/h", "#### 60", C),
    ("It takes 3 hours.", "#### 3", C),
    ("It weighs 12.5 kg.", "12.5", C),
    ("Each gets 1/2 of a pie.", "0.5", C),
    ("The answer is 3/4", "0.75", C),
    ("The answer is .5", "0.5", C),
    ("18.0", GSM, C),
    ("18.5", GSM, I),
    ("018", GSM, C),
    # --- GSM8K: signs
    ("The temperature is -10 degrees.", "#### -10", C),
    ("The temperature is \u221210 degrees.", "#### -10", C),
    ("The temperature is 10 degrees.", "#### -10", I),
    ("10-3=7", "#### 7", C),
    ("10-3=7", "#### -3", I),
    # --- GSM8K: hallucinated continuation after the answer is cut at a stop string
    ("18\nQuestion: Tom has 5 apples", GSM, C),
    ("18\nQ: Tom has 5 apples. A: 5", GSM, C),
    ("The answer is 18.<|im_end|>\n<|im_start|>user\nWhat is 2+3? 5", GSM, C),
    ("The answer is 18.<|endoftext|>The answer is 5.", GSM, C),
    ("The answer is 18.</s>5", GSM, C),
    ("18\nHuman: and 7?", GSM, C),
    ("Question: Tom has 5 apples\n so 18", GSM, C),  # a stop string needs its newline: not cut here
    # --- GSM8K: no answer
    ("", GSM, N),
    ("I do not know.", GSM, N),
    ("\nQuestion: 18", GSM, N),  # everything after the stop string is dropped
    # --- bare numeric golds (MATH answers that are numbers)
    ("\\boxed{10}", "10", C),
    ("\\boxed{10.0}", "10", C),
    ("\\boxed{\\frac{20}{2}}", "10", C),
    ("\\boxed{11}", "10", I),
    ("\\boxed{90^\\circ}", "90^\\circ", C),
    ("\\boxed{90}", "90^\\circ", C),
    ("\\boxed{90^{\\circ}}", "90", C),
    ("\\boxed{0.75}", "\\frac{3}{4}", C),
    ("\\boxed{\\dfrac{3}{4}}", "\\frac34", C),
    ("\\boxed{-\\frac{1}{2}}", "-\\frac{1}{2}", C),
    ("\\boxed{\\frac{1}{2}}", "-\\frac{1}{2}", I),
    ("\\boxed{\\$18.90}", "\\$18.90", C),
    ("\\boxed{1{,}000}", "1000", C),
    # --- MATH: fractions and radicals
    ("\\boxed{\\frac{14}{3}}", "\\frac{14}{3}", C),
    ("\\boxed{\\tfrac{14}{3}}", "\\frac{14}{3}", C),
    ("\\boxed{\\frac{3}{14}}", "\\frac{14}{3}", I),
    ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt3}{2}", C),
    ("\\boxed{\\frac{1}{2}\\sqrt{3}}", "\\frac{\\sqrt3}{2}", C),
    ("\\boxed{\\sqrt{3}}", "\\frac{\\sqrt3}{2}", I),
    ("\\boxed{2\\sqrt{2}}", "2\\sqrt2", C),
    ("\\boxed{\\sqrt{8}}", "2\\sqrt{2}", C),
    ("\\boxed{\\sqrt{7}}", "2\\sqrt{2}", I),
    ("\\boxed{\\frac{1+\\sqrt{5}}{2}}", "\\frac{1 + \\sqrt{5}}{2}", C),
    ("\\boxed{2\\pi}", "2\\pi", C),
    ("\\boxed{\\pi}", "2\\pi", I),
    # --- MATH: intervals, and verify's argument order (gold first: relation vs interval is not symmetric)
    ("\\boxed{[2,5)}", "[2,5)", C),
    ("\\boxed{(2,5]}", "[2,5)", I),
    ("\\boxed{(-\\infty, 3]}", "(-\\infty,3]", C),
    ("\\boxed{(-\\infty,1)\\cup(2,\\infty)}", "(-\\infty, 1) \\cup (2, \\infty)", C),
    ("\\boxed{(-\\infty,1)\\cup(3,\\infty)}", "(-\\infty, 1) \\cup (2, \\infty)", I),
    ("\\boxed{(1,2)}", "1<x<2", C),
    ("\\boxed{1<x<2}", "(1,2)", I),
    ("\\boxed{1 \\le x \\le 2}", "[1,2]", I),
    # --- MATH: tuples, sets, matrices
    ("\\boxed{(3, \\frac{\\pi}{2})}", "\\left( 3, \\frac{\\pi}{2} \\right)", C),
    ("\\boxed{\\left(3,\\frac{\\pi}{2}\\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)", C),
    ("\\boxed{(3, \\pi)}", "\\left( 3, \\frac{\\pi}{2} \\right)", I),
    ("\\boxed{(2,1)}", "(1,2)", I),
    ("\\boxed{1, 2, 3}", "1,2,3", C),
    ("\\boxed{3, 2, 1}", "1,2,3", C),
    ("\\boxed{1, 2}", "1,2,3", I),
    ("\\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}", C),
    ("\\boxed{\\begin{pmatrix} 2 \\\\ 1 \\end{pmatrix}}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}", I),
    ("\\boxed{\\begin{pmatrix} 1 & 0 \\\\ 0 & 1 \\end{pmatrix}}", "\\begin{pmatrix} 1 & 0 \\\\ 0 & 1 \\end{pmatrix}", C),
    ("\\boxed{\\begin{pmatrix} 1 & 0 \\\\ 0 & 2 \\end{pmatrix}}", "\\begin{pmatrix} 1 & 0 \\\\ 0 & 1 \\end{pmatrix}", I),
    # --- MATH: \text{}, expressions, equations
    ("\\boxed{\\text{Evelyn}}", "\\text{Evelyn}", C),
    ("\\boxed{\\text{Tom}}", "\\text{Evelyn}", I),
    ("\\boxed{\\text{(C)}}", "\\text{(C)}", C),
    ("\\boxed{p - q}", "p - q", C),
    ("\\boxed{-q + p}", "p - q", C),
    ("\\boxed{q - p}", "p - q", I),
    ("\\boxed{x^2+2x+1}", "(x+1)^2", C),
    ("\\boxed{y = 2x + 3}", "y = 2x+3", C),
    ("\\boxed{2x + 3}", "y = 2x+3", C),
    ("\\boxed{3x + 2}", "y = 2x+3", I),
    # --- fractions followed by punctuation: the denominator may end a sentence ("3/4." is 3/4, not 3)
    ("The answer is 3/4.", "0.75", C),
    ("#### 3/4.", "0.75", C),
    ("#### 3/4.", "#### 3", I),
    ("The answer is 3/4.", "#### 3", I),
    ("The answer is 5/8!", "\\frac{5}{8}", C),
    ("So each one gets 7/4).", "1.75", C),
    ("**Answer:** 2/5;", "0.4", C),
    ("The answer is 3/4.5 of it", "0.75", I),  # decimals after the slash: not a fraction
    ("The answer is -3/4.", "-0.75", C),
    ("The answer is -3/4.", "0.75", I),
    ("The answer is \u22125/2.", "-2.5", C),
    ("The answer is 10/4.", "2.5", C),
    # --- mixed numbers, in text and LaTeX (math-verify also reads 2\frac{1}{2} as 5/2)
    ("She needs 1 1/2 cups.", "1.5", C),
    ("She needs 1 1/2 cups.", "0.5", I),
    ("The answer is 2 3/4.", "2.75", C),
    ("The answer is 2 3/4.", "0.75", I),
    ("The answer is -1 1/2.", "-1.5", C),
    ("\\boxed{1 1/2}", "1.5", C),
    ("\\boxed{1 1/2}", "5.5", I),  # spaces dropped before parsing would read 11/2
    ("\\boxed{2\\frac{1}{2}}", "2.5", C),
    ("\\boxed{\\frac34}", "0.75", C),
    ("x^2\\frac{1}{2}", "2.5", I),  # an exponent is no whole part
    # --- LaTeX in inline or display math after an answer phrase, against a decimal or fraction gold
    ("The answer is $\\frac{3}{4}$.", "0.75", C),
    ("The answer is $\\frac{3}{4}$.", "4", I),  # the denominator is not the last number
    ("The answer is $\\frac{3}{4}$.", "0.7", I),
    ("The answer is \\(\\frac{3}{4}\\).", "0.75", C),
    ("The answer is \\(\\dfrac{3}{4}\\)", "\\frac34", C),
    ("Final answer: $\\tfrac56$", "\\frac{5}{6}", C),
    ("The answer is \\[\\frac{7}{8}\\]", "0.875", C),
    ("The final answer is $$\\frac{3}{4}$$.", "0.75", C),
    ("The answer is $-\\frac{3}{4}$.", "-0.75", C),
    ("The answer is $-\\frac{3}{4}$.", "0.75", I),
    ("The answer is $\\frac{-9}{4}$.", "-2.25", C),
    ("The answer is $2\\frac{1}{2}$.", "2.5", C),
    ("The answer is $2\\frac{1}{2}$.", "0.5", I),
    ("The answer is $\\frac{3}{4}$, i.e. 75 percent of it", "0.75", C),
    ("So $x = \\frac{3}{4}$.", "0.75", C),
    ("So $x = \\frac{3}{4}$.", "4", I),
    ("The answer is $x = 5$. Check: 5 + 1 = 6", "5", C),  # the stated answer, not the check's last number
    ("The answer is \\(x = 5\\).", "6", I),
    ("The answer is $2^{10}$.", "1024", C),  # more than a number: math-verify decides
    ("The answer is $2^{10}$.", "2", I),
    ("The answer is $3\\sqrt{2}$.", "3", I),
    ("The answer is $18. Then she buys $5 more.", "#### 18", C),  # a currency sign, not a math span
    # --- thousands separators, percent, units and closing punctuation after the stated answer
    ("The answer is 1,234.", "#### 1", I),
    ("The answer is 1,234,567!", "1234567", C),
    ("The answer is 50%.", "#### 50", C),
    ("The answer is 12 km.", "12", C),
    ("The answer is (7). Then 8 more.", "7", C),
    ("The answer is 7)", "7", C),
    ("x = 5.", "5", C),
    # --- MATH: no box, continuation, no answer
    ("The answer is $\\frac{1}{2}$.", "\\frac12", C),
    ("Therefore the final answer is $\\sqrt{2}$.", "\\sqrt2", C),
    ("\\boxed{\\sqrt{2}}\nProblem: find \\boxed{\\sqrt{3}}", "\\sqrt2", C),
    ("I cannot solve this.", "\\frac12", N),
]


def test_table_is_large_enough():
    assert len(CASES) >= 100
    verdicts = {v for _, _, v in CASES}
    assert verdicts == {C, I, N}


@pytest.mark.parametrize("prediction,gold,expected", CASES, ids=[f"{i}" for i in range(len(CASES))])
def test_table(prediction, gold, expected):
    with deadline(5.0):
        result = math_reward("", prediction, gold)
    assert result.verdict == expected, f"{prediction!r} vs {gold!r}: {result.reason}"
    assert result.score == (1.0 if expected == C else 0.0)
    assert result.reason  # every verdict says why


def test_gold_with_no_number_is_an_error_in_gsm8k_mode():
    result = math_reward("", "\\boxed{18}", "\\text{Evelyn}", mode="gsm8k")
    assert result.verdict == E and "no numeric gold" in result.reason


def test_stop_strings_are_configurable():
    assert math_reward("", "18\nQuestion: 5", GSM, stop=[]).verdict == I
    assert math_reward("", "18 STOP 5", GSM, stop=["STOP"]).verdict == C


@pytest.mark.parametrize(
    "text,strict,flexible",
    [
        ("#### 1,600", "1600", "1600"),
        ("The answer is 72.", None, "72"),
        ("#### 18\nCheck: 18 / 2 = 9", "18", "9"),
        ("no numbers here", None, None),
        ("costs $1,234.50.", None, "1234.5"),
    ],
)
def test_public_extractors(text, strict, flexible):
    assert extract_gsm8k_strict(text) == strict
    assert extract_last_number(text) == flexible


def test_gsm8k_gold():
    assert extract_gsm8k_gold(GSM) == "18"
    assert extract_gsm8k_gold("... #### 1,450,000") == "1450000"
    assert extract_gsm8k_gold("#### -10") == "-10"
    assert extract_gsm8k_gold("no marker 18") is None


@pytest.mark.parametrize("completion, score", [
    ("She has 3 + 4 = 7 apples.\n#### 7", 1.0),
    ("#### 1,600 dollars", 1.0),
    ("#### 12\nand later #### 13", 1.0),  # the last one is the answer; the format holds either way
    ("The answer is 7.", 0.0),
    ("####", 0.0),
    ("#### seven", 0.0),
    ("", 0.0),
])
def test_gsm8k_format_reward_pays_for_a_strict_answer_right_or_wrong(completion, score):
    from rlvr.rewards.format import gsm8k_format_reward

    result = gsm8k_format_reward("q", completion, "999")
    assert result.score == score, result.reason
