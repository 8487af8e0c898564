"""A learning curve for GRPO: greedy accuracy on a fixed held-out slice of the training distribution every
`curve.every_steps` steps, scored by the run's own rollout workers and reward service (so it costs one greedy batch
on the engines that are already up), logged as `eval/heldout_accuracy` next to the on-policy `reward/mean`, and
plotted to OUTPUT_DIR/learning_curve.png at the end.

For GSM8K/JSONL data the slice is the last `curve.num_examples` items of the training file, removed from the
training prompts (`split_held_out`), so the curve measures generalisation to unseen problems of the same kind.
"""

from __future__ import annotations

import json
from pathlib import Path

from rlvr.config import ConfigError, RunConfig
from rlvr.data.prompts import Example, render_prompt
from rlvr.rewards.types import Sample
from rlvr.rollout.base import SamplingParams

CURVE_METRIC = "eval/heldout_accuracy"
REWARD_METRIC = "reward/mean"


def split_held_out(cfg: RunConfig, examples: list[Example]) -> tuple[list[Example], list[Example]]:
    """(training examples, held-out slice); the slice is empty when the curve is off."""
    c = cfg.curve
    if not c.every_steps:
        return examples, []
    if cfg.data.source == "word_problems":
        from rlvr.data.synthetic import word_problems

        return examples, [Example(p.question, str(p.answer)) for p in word_problems(c.num_examples, cfg.run.seed,
                                                                                    "held_out")]
    if cfg.data.source in ("copy_digits", "add_digits"):
        raise ConfigError(f"curve.every_steps needs held-out data: data.source={cfg.data.source!r} has none "
                          "(use word_problems, gsm8k or jsonl)")
    if c.num_examples >= len(examples):
        raise ConfigError(f"curve.num_examples={c.num_examples} would leave no training prompts of the "
                          f"{len(examples)} in {cfg.data.path}")
    return examples[: -c.num_examples], examples[-c.num_examples:]


def held_out_accuracy(cfg: RunConfig, rollout, rewards, tokenizer, held_out: list[Example]) -> dict[str, float]:
    """Greedy, one sample per item, through the run's engines and reward service."""
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=cfg.curve.max_new_tokens or cfg.rollout.max_new_tokens,
                            stop=tuple(cfg.rollout.stop), seed=0, logprobs=False)
    prompt_ids = [render_prompt(tokenizer, cfg.data, ex.prompt) for ex in held_out]
    completions = rollout.generate(prompt_ids, params)
    samples = [Sample(held_out[c.prompt_index].prompt, c.text, held_out[c.prompt_index].reference)
               for c in completions]
    results = rewards.score(samples)
    correct = sum(r.score >= 1.0 for r in results)
    return {CURVE_METRIC: correct / len(results), "eval/heldout_n": float(len(results))}


def is_curve_step(cfg: RunConfig, done: int) -> bool:
    """After `done` steps: every curve.every_steps, and the last step."""
    every = cfg.curve.every_steps
    return bool(every) and (done % every == 0 or done == cfg.run.steps)


def read_curve(metrics_path: Path) -> dict[str, list[tuple[int, float]]]:
    """(step, value) series of the on-policy reward and the held-out accuracy from a metrics.jsonl.

    A line's `step` is 0-based and logged after that step's update; the held-out point it carries was measured
    after step+1 updates (the one before training rides on the first line as `..._before`), so points are placed
    at updates done."""
    series: dict[str, list[tuple[int, float]]] = {REWARD_METRIC: [], CURVE_METRIC: []}
    for line in metrics_path.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if f"{CURVE_METRIC}_before" in row:
            series[CURVE_METRIC].append((0, float(row[f"{CURVE_METRIC}_before"])))
        for key in series:
            if key in row:
                series[key].append((int(row["step"]) + 1, float(row[key])))
    return series


def plot_curve(metrics_path: Path, png: Path, title: str = "") -> Path | None:
    """One run's curves; None (with a note) when matplotlib is not installed (e.g. a bare GPU image)."""
    return plot_runs({"": metrics_path}, png, title or metrics_path.parent.name)


def plot_runs(runs: dict[str, Path], png: Path, title: str = "") -> Path | None:
    """Curves of several runs (label -> metrics.jsonl) in one PNG: each run's on-policy reward as a line and its
    held-out accuracy as points, in the run's colour."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"[rlvr] matplotlib is not installed: no {png.name} (plot later with "
              "`python -m rlvr.trainer.curve METRICS.jsonl`)", flush=True)
        return None
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    for i, (label, path) in enumerate(runs.items()):
        series, colour, prefix = read_curve(path), f"C{i}", f"{label}: " if label else ""
        for key, what, style in ((REWARD_METRIC, "on-policy reward (train prompts, sampled)", "-"),
                                 (CURVE_METRIC, "held-out greedy accuracy", "o--")):
            if series[key]:
                xs, ys = zip(*series[key])
                ax.plot(xs, ys, style, color=colour if label else None, label=prefix + what, linewidth=1.2,
                        markersize=3, alpha=0.6 if key == REWARD_METRIC and label else 1.0)
    ax.set_xlabel("GRPO updates")
    ax.set_ylabel("accuracy / mean reward")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=7)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)
    return png


def main(argv: list[str] | None = None) -> int:
    """`python -m rlvr.trainer.curve [LABEL=]METRICS.jsonl ... [--out PNG] [--title T]`: plot runs' curves."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m rlvr.trainer.curve")
    p.add_argument("metrics", nargs="+", help="metrics.jsonl files, each optionally as LABEL=PATH")
    p.add_argument("--out", help="default: learning_curve.png next to the first metrics file")
    p.add_argument("--title", default="")
    args = p.parse_args(argv)
    runs = {}
    for spec in args.metrics:
        label, _, path = spec.rpartition("=")
        runs[label] = Path(path)
    first = next(iter(runs.values()))
    out = plot_runs(runs, Path(args.out) if args.out else first.with_name("learning_curve.png"), args.title)
    print(out)
    return 0 if out else 1


if __name__ == "__main__":
    raise SystemExit(main())
