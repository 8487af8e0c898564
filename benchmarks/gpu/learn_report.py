"""Issue 14's tables from the files a device run brought back: eval summaries, paired comparisons, GRPO metrics and
the pass-rate summary, as markdown (docs/results.md), and the arms' learning curves in one PNG.

    python benchmarks/gpu/learn_report.py DIR --prefix 2026-11-25-h100 [--png docs/learning_curves_gsm8k.png]

DIR holds PREFIX-gsm8k-eval-{base,sft,rl,control}.summary.json, PREFIX-gsm8k-cmp-*.json,
PREFIX-gsm8k-{rl,control[,entropy,random]}-metrics.jsonl and PREFIX-gsm8k-passrate.summary.json (missing ones
are skipped).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

MODELS = [("base", "SmolLM2-135M-Instruct"), ("sft", "+ SFT (the RL start)"), ("rl", "+ GRPO (on-policy, G = 16)"),
          ("control", "+ GRPO, random-reward control")]
ARMS = ("rl", "control", "entropy", "random")  # entropy, random: issue 17's token-selection arms, when run
COMPARISONS = [("rl-vs-start", "GRPO vs start"), ("control-vs-start", "control vs start"),
               ("start-vs-base", "start vs base"), ("rl-vs-control", "GRPO vs control")]


def load(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def metrics_files(d: Path, prefix: str) -> dict[str, Path]:
    """The GRPO arms that brought back per-step metrics, by name."""
    paths = {arm: d / f"{prefix}-gsm8k-{arm}-metrics.jsonl" for arm in ARMS}
    return {arm: path for arm, path in paths.items() if path.is_file()}


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


def model_rows(d: Path, prefix: str) -> list[str]:
    out = ["| model | strict | flexible | strict no-answer | truncated |", "|---|---|---|---|---|"]
    for key, label in MODELS:
        s = load(d / f"{prefix}-gsm8k-eval-{key}.summary.json")
        if s is None:
            out.append(f"| {label} | not evaluated | | | |")
            continue
        cells = []
        for m in ("strict", "flexible"):
            r = s[m]
            lo, hi = r["ci95"]
            cells.append(f"{r['correct']} = {pct(r['accuracy'])}% [{pct(lo)}, {pct(hi)}]")
        out.append(f"| {label} | {cells[0]} | {cells[1]} | {pct(s['strict']['no_answer_rate'])}% | "
                   f"{pct(s['truncated_rate'])}% |")
    return out


def comparison_rows(d: Path, prefix: str) -> list[str]:
    out = ["| B vs A | strict | flexible |", "|---|---|---|"]
    for key, label in COMPARISONS:
        c = load(d / f"{prefix}-gsm8k-cmp-{key}.json")
        if c is None:
            continue
        cells = []
        for m in ("strict", "flexible"):
            r = c[m]
            lo, hi = r["bootstrap_ci95"]
            mc = r["mcnemar"]
            cells.append(f"{100 * r['diff_b_minus_a']:+.2f} [{100 * lo:+.2f}, {100 * hi:+.2f}], McNemar "
                         f"{mc['a_only']}/{mc['b_only']}, p = {mc['p_value']:.2g}")
        out.append(f"| {label} | {cells[0]} | {cells[1]} |")
    return out


def arm_rows(d: Path, prefix: str, per_step: int) -> list[str]:
    out = ["| arm | steps | rollouts sampled (trained) | on-policy reward, first 5 / last 5 steps | held-out (train "
           "items) greedy accuracy, before -> last (peak) | median step s |", "|---|---|---|---|---|---|"]
    for arm, path in metrics_files(d, prefix).items():
        rows = read_rows(path)
        rewards = [r["reward/mean"] for r in rows]
        first = sum(rewards[:5]) / len(rewards[:5])
        last = sum(rewards[-5:]) / len(rewards[-5:])
        before = next((r["eval/heldout_accuracy_before"] for r in rows if "eval/heldout_accuracy_before" in r), None)
        curve = [r["eval/heldout_accuracy"] for r in rows if "eval/heldout_accuracy" in r]
        steps = sorted(r["time/step_s"] for r in rows)
        held = f"{pct(before)}% -> {pct(curve[-1])}% ({pct(max(curve))}%)" if before is not None and curve else "n/a"
        # a step with drop_zero_variance_groups rolls out 1 + refill_draws batches and trains on one (runs before
        # rollouts/sampled and rollouts/trained were logged: every draw the size of the first, per_step rollouts)
        sampled = sum(int(r.get("rollouts/sampled", per_step * (1 + r.get("groups/refill_draws", 0)))) for r in rows)
        trained = sum(int(r.get("rollouts/trained", per_step)) for r in rows)
        out.append(f"| {arm} | {len(rows)} | {sampled:,} ({trained:,}) | {first:.3f} / {last:.3f} | "
                   f"{held} | "
                   f"{steps[len(steps) // 2]:.1f} |")
    return out


def band_lines(d: Path, prefix: str) -> list[str]:
    """Per arm, where its samples went: sampled per trained rollout over its first and last 50 steps, and (with
    data.online_band or a refreshed map) the prompts left in the band at the end and those dropped."""
    out = []
    for arm, path in metrics_files(d, prefix).items():
        rows = [r for r in read_rows(path) if "rollouts/sampled" in r and "rollouts/trained" in r]
        if not rows:
            continue

        def ratio(part):
            return sum(r["rollouts/sampled"] for r in part) / sum(r["rollouts/trained"] for r in part)
        line = (f"{arm}: sampled per trained rollout {ratio(rows[:50]):.2f} (first 50 steps) / "
                f"{ratio(rows[-50:]):.2f} (last 50)")
        last = rows[-1]
        if "data/band_prompts" in last:
            line += (f"; band at the end: {last['data/band_prompts']:,.0f} prompts, dropped "
                     f"{last['data/dropped_unsolved']:,.0f} never solved and {last['data/dropped_solved']:,.0f} "
                     f"always solved")
        out.append(line)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("--prefix", required=True)
    p.add_argument("--png")
    p.add_argument("--per-step", type=int, default=256,
                   help="rollouts per GRPO step (prompts x G), for runs that did not log rollouts/trained")
    args = p.parse_args()
    d = Path(args.dir)
    for block in (model_rows(d, args.prefix), comparison_rows(d, args.prefix), arm_rows(d, args.prefix, args.per_step)):
        print("\n".join(block) + "\n")
    print("\n".join(band_lines(d, args.prefix)))
    pr = load(d / f"{args.prefix}-gsm8k-passrate.summary.json")
    if pr:
        print(f"pass-rate map: {pr['prompts']} prompts x K={pr['k']}: never {pct(pr['never_solved'])}%, mixed "
              f"{pct(pr['mixed'])}%, always {pct(pr['always_solved'])}%, mean {pr['mean_pass_rate']:.4f}; "
              f"by correct count {pr['by_correct']}")
    if args.png:
        from rlvr.trainer.curve import plot_runs

        runs = metrics_files(d, args.prefix)
        if runs:
            updates = max(len(read_rows(path)) for path in runs.values())
            arms = "GRPO vs random-reward control" if len(runs) <= 2 else f"{len(runs)} GRPO arms"
            title = f"SmolLM2-135M, GSM8K: {arms}, {updates} updates"
            print(plot_runs(runs, Path(args.png), title))


if __name__ == "__main__":
    main()
