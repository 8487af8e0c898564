"""Confidence interval, exact McNemar and paired bootstrap against hand-computed or published values."""

import math

import pytest

from rlvr.eval.stats import mcnemar_exact, paired_bootstrap, wilson_interval


@pytest.mark.parametrize(
    "k,n,lo,hi",
    # Newcombe (1998), Statistics in Medicine 17:857, Table II, method 3 (Wilson score, no continuity correction).
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)],
)
def test_wilson_matches_published_values(k, n, lo, hi):
    got = wilson_interval(k, n)
    assert got == pytest.approx((lo, hi), abs=5e-5)


def test_wilson_by_hand():
    # 8/10, z = 1.96: centre = (0.8 + z^2/20) / (1 + z^2/10), half = z sqrt(0.016 + z^2/400) / (1 + z^2/10)
    z2 = 1.959963984540054**2
    centre = (0.8 + z2 / 20) / (1 + z2 / 10)
    half = math.sqrt(z2) * math.sqrt(0.016 + z2 / 400) / (1 + z2 / 10)
    assert wilson_interval(8, 10) == pytest.approx((centre - half, centre + half))
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0 and lo < 1.0
    with pytest.raises(ValueError):
        wilson_interval(1, 0)


def test_wilson_with_fractional_successes():
    # Items scored as shares of K samples: 5 items with mean 0.3 -> p = 0.3, n = 5 in the Wilson formula.
    z2 = 1.959963984540054**2
    centre = (0.3 + z2 / 10) / (1 + z2 / 5)
    half = math.sqrt(z2) * math.sqrt(0.3 * 0.7 / 5 + z2 / 100) / (1 + z2 / 5)
    assert wilson_interval(1.5, 5) == pytest.approx((centre - half, centre + half))
    # Unlike a normal interval on the item scores, it does not collapse when every item scores 0.
    assert wilson_interval(0.0, 5) == pytest.approx((0.0, 0.4345), abs=1e-4)


def test_mcnemar_hand_computed():
    # 1 item only A solves, 9 only B, 5 both, 5 neither: p = 2 * (C(10,0) + C(10,1)) / 2^10 = 22/1024.
    a = [1] * 1 + [0] * 9 + [1] * 5 + [0] * 5
    b = [0] * 1 + [1] * 9 + [1] * 5 + [0] * 5
    result = mcnemar_exact(a, b)
    assert (result.a_only, result.b_only) == (1, 9)
    assert result.p_value == pytest.approx(22 / 1024)
    # Symmetric, and concordant items do not move it.
    assert mcnemar_exact(b, a).p_value == pytest.approx(22 / 1024)


def test_mcnemar_edge_cases():
    assert mcnemar_exact([1, 0, 1], [1, 0, 1]).p_value == 1.0
    assert mcnemar_exact([1, 0], [0, 1]).p_value == 1.0  # min(1,1): 2 * 3/4 capped at 1
    assert mcnemar_exact([0] * 6, [1] * 6).p_value == pytest.approx(2 / 64)
    with pytest.raises(ValueError):
        mcnemar_exact([1], [1, 0])


def test_bootstrap_identical_runs():
    scores = [1, 0, 1, 1, 0, 1, 0, 0]
    result = paired_bootstrap(scores, scores, resamples=500, seed=1)
    assert result.diff == 0.0 and result.ci95 == (0.0, 0.0) and result.p_value == 1.0


def test_bootstrap_clear_improvement_and_seed():
    a = [0] * 40 + [1] * 60
    b = [1] * 30 + [0] * 10 + [1] * 60  # B fixes 30 of A's 40 failures and breaks none
    result = paired_bootstrap(a, b, resamples=2000, seed=3)
    assert result.diff == pytest.approx(0.30)
    lo, hi = result.ci95
    assert 0.0 < lo < 0.30 < hi < 0.45
    assert result.p_value < 0.001
    assert paired_bootstrap(a, b, resamples=2000, seed=3) == result
    assert paired_bootstrap(a, b, resamples=2000, seed=4).ci95 != result.ci95


def test_bootstrap_no_difference_is_not_significant():
    # Equal numbers of items go each way: the interval must cover 0.
    a = [1, 0] * 20 + [1] * 20
    b = [0, 1] * 20 + [1] * 20
    result = paired_bootstrap(a, b, resamples=2000, seed=0)
    assert result.diff == 0.0
    assert result.ci95[0] < 0.0 < result.ci95[1]
    assert result.p_value > 0.5


def test_bootstrap_matches_analytic_standard_error():
    # For a mean of n paired differences the bootstrap SE approaches sd(delta) / sqrt(n) (with ddof=0).
    a = [0] * 50 + [1] * 150
    b = [1] * 30 + [0] * 20 + [1] * 130 + [0] * 20
    result = paired_bootstrap(a, b, resamples=4000, seed=0)
    delta = [y - x for x, y in zip(a, b)]
    mean = sum(delta) / len(delta)
    se = math.sqrt(sum((d - mean) ** 2 for d in delta) / len(delta)) / math.sqrt(len(delta))
    assert (result.ci95[1] - result.ci95[0]) / (2 * 1.96) == pytest.approx(se, rel=0.1)
