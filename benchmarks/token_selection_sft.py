"""CPU experiment for docs/token_selection.md: the embedded default pipeline's SFT stage with
learner.token_selection = all / confidence / random at equal steps, several seeds, all from one pretrained model.

    PYTHONPATH=$PWD nice -n 10 python benchmarks/token_selection_sft.py --out runs/token_selection \
        --pretrain-steps 300 --sft-steps 100 --seeds 0 1 2 --keep 0.5 --eval 300

Runs `python -m rlvr train --stage data --stage pretrain` once (seed 0), then `--stage sft --from` that export for every
(strategy, seed); collects the held-out accuracy (stage_accuracy.json) and the mean `time/step_s` (metrics.jsonl,
first 5 steps dropped as warm-up) into OUT/results.json. `--plot` only redraws the figure from results.json.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

STRATEGIES = ("all", "confidence", "random")


def train(out: Path, stages: list[str], sets: list[str], start_from: str | None = None) -> None:
    cmd = [sys.executable, "-m", "rlvr", "train", *[a for st in stages for a in ("--stage", st)], "--overwrite",
           "--set", f"run.output_dir={out}", "--set", "learner.num_actors=1", "--set", "logging.progress_bar=false"]
    cmd += [a for s in sets for a in ("--set", s)] + (["--from", start_from] if start_from else [])
    print("+", " ".join(cmd), flush=True)
    # address=local: always a fresh cluster of our own; on a shared machine another user's `ray start` would
    # otherwise be joined (and num_cpus refused)
    subprocess.run(cmd, check=True, env={**os.environ, "RAY_ADDRESS": "local"})


def collect(run_dir: Path) -> dict:
    acc = json.loads((run_dir / "stage_accuracy.json").read_text())["sft"]
    lines = [json.loads(line) for line in (run_dir / "sft" / "metrics.jsonl").read_text().splitlines()]
    steps = [m["time/step_s"] for m in lines[5:]] or [m["time/step_s"] for m in lines]
    last = lines[-1]
    return {"accuracy": acc["accuracy"], "correct": acc["correct"], "n": acc["n"],
            "step_s_mean": statistics.fmean(steps), "step_s_median": statistics.median(steps),
            "final_loss_kept": last["lm/loss"], "final_nll_all": last.get("select/nll_all_tokens"),
            "kept_fraction": last.get("select/kept_fraction", 1.0)}


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_acc, ax_t) = plt.subplots(1, 2, figsize=(9, 3.6))
    for i, strategy in enumerate(STRATEGIES):
        rows = [r for r in results if r["strategy"] == strategy]
        for ax, key, scale in ((ax_acc, "accuracy", 100.0), (ax_t, "step_s_mean", 1.0)):
            ys = [r[key] * scale for r in rows]
            ax.scatter([i] * len(ys), ys, color="C0", alpha=0.7)
            if ys:
                ax.hlines(statistics.fmean(ys), i - 0.25, i + 0.25, color="C3")
    for ax, label in ((ax_acc, "held-out accuracy after SFT (%)"), (ax_t, "SFT step time (s, mean)")):
        ax.set_xticks(range(len(STRATEGIES)), STRATEGIES)
        ax.set_ylabel(label)
    fig.suptitle("SFT with token selection: dots = seeds, red = mean")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="runs/token_selection")
    p.add_argument("--pretrain-steps", type=int, default=300)
    p.add_argument("--sft-steps", type=int, default=100)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--keep", type=float, default=0.5)
    p.add_argument("--eval", type=int, default=300)
    p.add_argument("--plot", default="docs/token_selection_sft.png")
    p.add_argument("--plot-only", action="store_true")
    args = p.parse_args()
    out = Path(args.out).resolve()
    results_file = out / "results.json"
    if not args.plot_only:
        pre = out / "pretrain"
        if not glob.glob(str(pre / "pretrain" / "checkpoints" / "step_*" / "hf")):
            # the preset's data stage first: pretraining reads its curated documents
            train(pre, ["data", "pretrain"], [f"pretrain.steps={args.pretrain_steps}", "stage_eval.enabled=false"])
        start = sorted(glob.glob(str(pre / "pretrain" / "checkpoints" / "step_*")))[-1]
        results = json.loads(results_file.read_text()) if results_file.is_file() else []
        for seed in args.seeds:
            for strategy in STRATEGIES:
                if any(r["strategy"] == strategy and r["seed"] == seed for r in results):
                    continue  # rerunning the script continues an interrupted sweep
                run_dir = out / f"sft_{strategy}_s{seed}"
                keep = 1.0 if strategy == "all" else args.keep
                train(run_dir, ["sft"], [f"run.seed={seed}", f"sft.steps={args.sft_steps}",
                                       f"stage_eval.num_examples={args.eval}",
                                       f"learner.token_selection.strategy={strategy}",
                                       f"learner.token_selection.keep_fraction={keep}"], start)
                results.append({"strategy": strategy, "seed": seed, "keep_fraction": keep, **collect(run_dir)})
                results_file.write_text(json.dumps(results, indent=2))
    results = json.loads(results_file.read_text())
    plot(results, Path(args.plot))
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
