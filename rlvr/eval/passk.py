"""Unbiased pass@k from n samples of which c are correct (Chen et al. 2021, "Evaluating Large Language Models
Trained on Code", eq. 1): 1 - C(n-c, k) / C(n, k), the chance that k of the n samples drawn without replacement
contain at least one correct one. Averaging it over problems is unbiased, unlike 1 - (1 - c/n)^k.
"""

from __future__ import annotations

from collections.abc import Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    # The product form of C(n-c, k) / C(n, k) avoids huge binomials for large n.
    ratio = 1.0
    for i in range(n - c + 1, n + 1):
        ratio *= 1.0 - k / i
    return 1.0 - ratio


def mean_pass_at_k(n: int, correct_counts: Sequence[int], k: int) -> float:
    """pass@k averaged over problems that each have n samples."""
    if not correct_counts:
        raise ValueError("pass@k of an empty set of problems")
    return sum(pass_at_k(n, c, k) for c in correct_counts) / len(correct_counts)


def report_ks(n: int) -> list[int]:
    """The k to report for n samples: 1, 2, 4, ... up to n, and n itself."""
    ks = [1]
    while ks[-1] * 2 <= n:
        ks.append(ks[-1] * 2)
    if ks[-1] != n:
        ks.append(n)
    return ks
