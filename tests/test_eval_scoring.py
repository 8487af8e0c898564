"""GSM8K strict-match vs flexible-extract (lm-eval's definitions) on crafted outputs, and unbiased pass@k."""

import pytest

from rlvr.eval.gsm8k import extract_flexible, extract_strict, gold_answer, score
from rlvr.eval.passk import mean_pass_at_k, pass_at_k, report_ks

GOLD = "She sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\nShe makes 9 * 2 = $<<9*2=18>>18.\n#### 18"

# (output, strict correct, flexible correct, strict extracted, flexible extracted)
CASES = [
    ("9 eggs at $2 make 18 dollars.\n#### 18", True, True, "18", "18"),
    # No "#### ": strict finds nothing, flexible takes the last number and drops the trailing period.
    ("She makes 9 * 2 = 18 dollars. The answer is 18.", False, True, None, "18."),
    # Strict takes the first "#### N"; flexible the last number, here a check written after the answer.
    ("#### 18\nCheck: 9 * 2 = 18, and 18 / 2 = 9", True, False, "18", "9"),
    # Missing space after ####: strict's regex requires "#### ".
    ("####18", False, True, None, "18"),
    # Dollar sign and comma are ignored by exact_match, for both metrics.
    ("#### $18", False, True, None, "$18"),
    ("#### 18.00", False, False, "18.00", "18.00"),  # string match: 18.00 is not 18 for lm-eval
    ("The answer is 18...", False, False, None, "18..."),  # only one trailing "." is ignored
    ("I do not know.", False, False, None, None),
    ("#### 17\n#### 18", False, True, "17", "18"),
]


@pytest.mark.parametrize("output,strict_ok,flex_ok,strict_x,flex_x", CASES)
def test_strict_vs_flexible(output, strict_ok, flex_ok, strict_x, flex_x):
    assert extract_strict(output) == strict_x
    assert extract_flexible(output) == flex_x
    assert score(output, GOLD, "strict").correct is strict_ok
    assert score(output, GOLD, "flexible").correct is flex_ok


def test_the_two_metrics_disagree_both_ways():
    disagreements = {(s, f) for _, s, f, *_ in CASES if s != f}
    assert disagreements == {(True, False), (False, True)}


def test_commas_dollars_and_negatives():
    gold = "... so the total is 1,250.\n#### 1,250"
    assert gold_answer(gold) == "1250"
    assert score("#### 1,250", gold, "strict").correct
    assert score("The total is $1,250.", gold, "flexible").correct
    assert score("#### -5", "#### -5", "strict").correct
    assert not score("#### 5", "#### -5", "strict").correct
    # A bare number is accepted as gold too (no "#### " to strip).
    assert score("#### 7", "7", "strict").correct


def test_verdicts():
    assert score("#### 18", GOLD, "strict").verdict == "correct"
    assert score("#### 19", GOLD, "strict").verdict == "incorrect"
    assert score("nothing", GOLD, "strict").verdict == "no_answer"
    with pytest.raises(ValueError):
        score("#### 18", GOLD, "lenient")


def test_pass_at_k_hand_values():
    assert pass_at_k(2, 1, 1) == pytest.approx(0.5)
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - 3 / 6)  # 1 - C(3,2)/C(4,2)
    assert pass_at_k(10, 3, 4) == pytest.approx(1 - 35 / 210)  # 1 - C(7,4)/C(10,4)
    assert pass_at_k(5, 0, 5) == 0.0
    assert pass_at_k(5, 1, 5) == 1.0
    assert mean_pass_at_k(4, [0, 1, 4], 2) == pytest.approx((0 + 0.5 + 1) / 3)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def test_pass_at_1_is_the_sample_accuracy():
    assert pass_at_k(8, 3, 1) == pytest.approx(3 / 8)


def test_report_ks():
    assert report_ks(1) == [1]
    assert report_ks(8) == [1, 2, 4, 8]
    assert report_ks(10) == [1, 2, 4, 8, 10]
