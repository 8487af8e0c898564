"""Paired comparison of two result files of the same task: the same items, two models (or two checkpoints).

Pairing matters: both runs answer the same questions, so item difficulty cancels and the test is much more
sensitive than comparing two independent confidence intervals. Per metric we report McNemar's exact test on the
first sample's correctness (the greedy answer) and a paired bootstrap of the accuracy difference on the per-item
share of correct samples (the same as the first sample's correctness when K = 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlvr.config import ConfigError
from rlvr.eval.runner import read_results
from rlvr.eval.stats import mcnemar_exact, paired_bootstrap


def _load(path: str) -> dict[str, dict[str, Any]]:
    if not Path(path).is_file():
        raise ConfigError(f"--compare: result file {path!r} does not exist")
    records = read_results(path)
    if not records:
        raise ConfigError(f"--compare: result file {path!r} has no items")
    return {r["id"]: r for r in records}


def compare_results(path_a: str, path_b: str, resamples: int = 10_000, seed: int = 0) -> dict[str, Any]:
    a, b = _load(path_a), _load(path_b)
    tasks = {r["task"] for r in a.values()} | {r["task"] for r in b.values()}
    if len(tasks) != 1:
        raise ConfigError(f"--compare: the files hold different tasks {sorted(tasks)}")
    ids = [i for i in a if i in b]  # A's order, so the bootstrap's resamples do not depend on dict order in B
    if not ids:
        raise ConfigError("--compare: the two files have no item ids in common")
    metrics = [m for m in next(iter(a.values()))["n_correct"] if m in next(iter(b.values()))["n_correct"]]
    out: dict[str, Any] = {"task": tasks.pop(), "a": path_a, "b": path_b, "paired_items": len(ids),
                           "only_in_a": len(a) - len(ids), "only_in_b": len(b) - len(ids)}
    for m in metrics:
        first_a = [a[i]["verdict"][m] == "correct" for i in ids]
        first_b = [b[i]["verdict"][m] == "correct" for i in ids]
        share_a = [a[i]["n_correct"][m] / a[i]["n_samples"] for i in ids]
        share_b = [b[i]["n_correct"][m] / b[i]["n_samples"] for i in ids]
        mc = mcnemar_exact(first_a, first_b)
        boot = paired_bootstrap(share_a, share_b, resamples=resamples, seed=seed)
        out[m] = {
            "accuracy_a": sum(share_a) / len(ids),
            "accuracy_b": sum(share_b) / len(ids),
            "diff_b_minus_a": boot.diff,
            "bootstrap_ci95": list(boot.ci95),
            "bootstrap_p": boot.p_value,
            "mcnemar": {"a_only": mc.a_only, "b_only": mc.b_only, "p_value": mc.p_value},
        }
    return out
