"""How long `data.online_band` keeps a GRPO run fed, by simulation through the real sampler (RefreshingSampler).

Per-prompt pass rates are drawn from a fit to a measured pass-rate map (a share of prompts never solvable, the rest
Beta-distributed; default: the third GSM8K run's map of 2,000 train prompts at T = 1.0, K = 16), scaled so that the
share of mixed groups matches a measured one (default 24%: the fourth run's first draws at T = 0.7). Each update
then draws prompts as GRPO does with algorithm.drop_zero_variance_groups (a first draw and refills of
`--per-draw` prompts, up to `--max-draws` in all, until `--need` groups are mixed), samples G binomial outcomes per
prompt and lets the sampler drop prompts by them. The model does not improve here: a rough guide, not a forecast.

    python benchmarks/sim_online_band.py            # prints a markdown table (docs/learning.md)
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from rlvr.data.passrate_refresh import RefreshingSampler
from rlvr.data.prompts import Example
from rlvr.utils.errors import DataExhausted

MAP = Path(__file__).resolve().parent / "gpu" / "results" / "2026-12-07-h100-run3-gsm8k-passrate.summary.json"


def beta_binomial_pmf(k: int, alpha: float, beta: float) -> np.ndarray:
    def log_beta(a, b):
        return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    return np.array([math.exp(math.lgamma(k + 1) - math.lgamma(c + 1) - math.lgamma(k - c + 1)
                              + log_beta(c + alpha, k - c + beta) - log_beta(alpha, beta)) for c in range(k + 1)])


def fit(by_correct: list[int], k: int) -> tuple[float, float, float]:
    """(share never solvable, Beta mean, Beta concentration) maximising the likelihood of the map's histogram."""
    counts, best = np.array(by_correct, float), (-math.inf, 0.0, 0.0, 0.0)
    for zero in np.linspace(0.0, 0.9, 19):
        for mean in np.linspace(0.005, 0.2, 40):
            for conc in (1, 2, 4, 8, 16, 32, 64):
                pmf = (1 - zero) * beta_binomial_pmf(k, mean * conc, (1 - mean) * conc)
                pmf[0] += zero
                ll = float((counts * np.log(pmf + 1e-300)).sum())
                best = max(best, (ll, zero, mean, conc))
    return best[1:]


def pass_rates(n: int, zero: float, mean: float, conc: float, mixed: float, g: int, rng) -> np.ndarray:
    """n pass rates from the fit, scaled so that a group of g is mixed with probability `mixed`."""
    base = np.where(rng.random(n) < zero, 0.0, rng.beta(mean * conc, (1 - mean) * conc, n))
    lo, hi = 0.1, 20.0
    for _ in range(50):
        scale = (lo + hi) / 2
        p = np.clip(base * scale, 0, 1)
        lo, hi = (scale, hi) if np.mean(1 - (1 - p) ** g - p ** g) < mixed else (lo, scale)
    return np.clip(base * scale, 0, 1)


def simulate(p: np.ndarray, args, patience: int, signal_patience: int | None, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    items = [Example(f"prompt {i}", str(i)) for i in range(len(p))]
    sampler = RefreshingSampler(items, seed, None, 0.0, 1.0, patience, "data.online_band", signal_patience)
    draws_per_update, pool, empty_at = [], [], None
    for update in range(args.updates):
        mixed, draws = 0, 0
        try:
            while mixed < args.need and draws < args.max_draws:
                batch = sampler.next_batch(args.per_draw)
                draws += 1
                for ex in batch:
                    correct = rng.binomial(args.g, p[int(ex.reference)])
                    mixed += 0 < correct < args.g
                    sampler.observe(ex.prompt, [1.0] * correct + [0.0] * (args.g - correct))
        except DataExhausted:
            empty_at = update
            break
        draws_per_update.append(draws)
        pool.append(sampler.metrics()["data/band_prompts"])
    return {"draws": draws_per_update, "pool": pool, "empty_at": empty_at}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--map-summary", type=Path, default=MAP)
    ap.add_argument("--mixed", type=float, default=0.24, help="share of mixed groups in a first epoch's draws")
    ap.add_argument("--prompts", type=int, default=6973)
    ap.add_argument("--g", type=int, default=16)
    ap.add_argument("--need", type=int, default=16, help="mixed groups per update")
    ap.add_argument("--per-draw", type=int, default=16)
    ap.add_argument("--max-draws", type=int, default=5)
    ap.add_argument("--updates", type=int, default=300)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    summary = json.loads(args.map_summary.read_text())
    k = summary["k"]
    zero, mean, conc = fit([summary["by_correct"][str(c)] for c in range(k + 1)], k)
    print(f"fit to {args.map_summary.name}: {zero:.2f} never solvable, the rest Beta(mean {mean:.4f}, "
          f"concentration {conc:g}); scaled to {args.mixed:.0%} mixed groups of {args.g}")

    def spread(values: list[str]) -> str:  # over the seeds: "a" or "lowest-highest" ("-": the band had emptied)
        if "-" in values:
            return "-"
        low, high = min(values, key=float), max(values, key=float)
        return low if low == high else f"{low}-{high}"

    def window(values, lo, hi):
        part = values[lo:hi]
        return f"{np.mean(part):.1f}" if len(part) == hi - lo else "-"

    print("| online_band | draws per update, updates 1-50 / 101-150 / 201-250 | prompts left after 150 / 250 updates "
          "| band empty at |")
    print("|---|---|---|---|")
    for patience, signal in ((1, None), (2, None), (1, 2), (1, 3)):
        runs = [simulate(pass_rates(args.prompts, zero, mean, conc, args.mixed, args.g, np.random.default_rng(s)),
                         args, patience, signal, s) for s in range(args.seeds)]
        draws = " / ".join(spread([window(r["draws"], lo, hi) for r in runs])
                           for lo, hi in ((0, 50), (100, 150), (200, 250)))
        left = " / ".join(spread([str(int(r["pool"][n - 1])) if len(r["pool"]) >= n else "-" for r in runs])
                          for n in (150, 250))
        empty = ", ".join(str(r["empty_at"]) if r["empty_at"] is not None else f">{args.updates}" for r in runs)
        name = f"patience {patience}" + (f", signal_patience {signal}" if signal else "")
        print(f"| {name} | {draws} | {left} | {empty} |")


if __name__ == "__main__":
    main()
