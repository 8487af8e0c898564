"""Confidence intervals and paired tests for accuracies, in pure Python/numpy (no scipy on the CPU machine).

- `wilson_interval`: the Wilson score interval for a binomial proportion. Unlike the normal (Wald) interval it stays
  inside [0, 1] and keeps close to nominal coverage at small n and at accuracies near 0 or 1, both common here.
  It also takes a fractional count: the sum of per-item scores in [0, 1] (the share of an item's K samples that are
  correct). Items, not samples, are then the units, and since a score in [0, 1] with mean p has variance at most
  p(1 - p), the interval is conservative; a normal interval on the scores would collapse to a point at 0 or 1.
- `mcnemar_exact`: McNemar's exact test on paired 0/1 outcomes: only discordant items count, and under H0 each one is
  equally likely to favour A or B, so min(b, c) is Binomial(b + c, 1/2).
- `paired_bootstrap`: resample items (the same indices for A and B) and report the difference of mean scores with
  a percentile 95% interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054  # the 0.975 quantile of the standard normal


def wilson_interval(correct: float, n: int, z: float = Z95) -> tuple[float, float]:
    if n <= 0 or not 0 <= correct <= n:
        raise ValueError(f"Wilson interval needs 0 <= correct <= n and n > 0, got correct={correct} n={n}")
    p = correct / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # In exact arithmetic the bound is 0 at p = 0 and 1 at p = 1; set them so rounding does not show 0.9999999.
    lo = 0.0 if correct == 0 else max(0.0, centre - half)
    hi = 1.0 if correct == n else min(1.0, centre + half)
    return lo, hi


def binomial_cdf_half(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2), exactly with integers (no float binomials that overflow)."""
    return sum(math.comb(n, i) for i in range(k + 1)) / 2**n


@dataclass(frozen=True)
class McNemar:
    a_only: int
    """Items A gets right and B gets wrong."""
    b_only: int
    p_value: float
    """Two-sided exact p: 2 * P(X <= min(a_only, b_only)), X ~ Binomial(a_only + b_only, 1/2), capped at 1."""


def mcnemar_exact(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> McNemar:
    if len(a_correct) != len(b_correct):
        raise ValueError(f"paired outcomes differ in length: {len(a_correct)} vs {len(b_correct)}")
    a_only = sum(1 for a, b in zip(a_correct, b_correct) if a and not b)
    b_only = sum(1 for a, b in zip(a_correct, b_correct) if b and not a)
    discordant = a_only + b_only
    if discordant == 0:
        return McNemar(0, 0, 1.0)
    p = min(1.0, 2.0 * binomial_cdf_half(min(a_only, b_only), discordant))
    return McNemar(a_only, b_only, p)


@dataclass(frozen=True)
class Bootstrap:
    diff: float
    """mean(B) - mean(A) on the observed items."""
    ci95: tuple[float, float]
    p_value: float
    """Two-sided: 2 * min(share of resampled differences <= 0, share >= 0), capped at 1. Approximate."""
    resamples: int


def paired_bootstrap(
    a_scores: Sequence[float], b_scores: Sequence[float], resamples: int = 10_000, seed: int = 0
) -> Bootstrap:
    a = np.asarray(a_scores, dtype=float)
    b = np.asarray(b_scores, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"paired bootstrap needs two equal-length non-empty score lists, got {a.shape} and {b.shape}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    delta = b - a  # resampling the per-item differences resamples A and B with the same indices
    rng = np.random.default_rng(seed)
    diffs = np.empty(resamples)
    chunk = max(1, 2_000_000 // a.size)  # bound memory to ~16 MB of indices whatever the data size
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        idx = rng.integers(0, a.size, size=(stop - start, a.size))
        diffs[start:stop] = delta[idx].mean(axis=1)
    lo, hi = np.quantile(diffs, [0.025, 0.975])
    p = min(1.0, 2.0 * min(float((diffs <= 0).mean()), float((diffs >= 0).mean())))
    return Bootstrap(float(delta.mean()), (float(lo), float(hi)), p, resamples)
