"""Every policy loss / advantage estimator on the tiny copy-digit task (configs/tiny.yaml), 3 seeds each, on CPU.

One process per seed runs every variant in turn (one DeepSpeed rank on gloo, the HF engine and the reward service
in it, one torch thread, no Ray: the loop is the real `run_grpo`, only the actors are replaced by in-process
objects). Writes OUT/VARIANT-sSEED/
metrics.jsonl, OUT/summary.md (mean reward of the first vs the last steps) and OUT/losses.png.

    nice -n 10 python benchmarks/bench_losses.py --out runs/bench_losses --steps 60
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VARIANTS = {
    "grpo": [],
    "dual_clip": ["algorithm.loss=dual_clip"],
    "gspo": ["algorithm.loss=gspo", "algorithm.loss_agg=seq_mean"],
    "cispo": ["algorithm.loss=cispo", "algorithm.clip_eps_low=1.0", "algorithm.clip_eps_high=0.28"],
    "drgrpo": ["algorithm.advantage=drgrpo", "algorithm.loss_agg=seq_mean_token_sum_norm"],
    "rloo": ["algorithm.advantage=rloo"],
    "reinforce_pp": ["algorithm.advantage=reinforce_pp"],
}
# one rank, two optimizer steps per batch (so the second is off-policy and the losses' clips differ), at 3e-3
# rather than the preset's 5e-3 (at 1e-2 the policy's entropy collapsed by step 16)
COMMON = ["learner.num_actors=1", "learner.backend=gloo", "learner.micro_batch_size=64", "algorithm.mini_batches=2",
          "learner.lr=3e-3", "logging.progress_bar=false", "logging.log_every=20", "rewards.processes=1"]


class LocalLearners:
    def __init__(self, learner):
        self.learner = learner

    def train_grpo(self, rollouts):
        return self.learner.train_grpo(rollouts)

    def weights_ref(self, keep=None):
        return self.learner.state_dict(keep)


class LocalRollout:
    def __init__(self, engine):
        self.engine = engine

    def generate(self, prompt_ids, params):
        return self.engine.generate(prompt_ids, params)

    def load_weights(self, weights):
        self.engine.load_weights(weights)


def run_one(variant: str, seed: int, steps: int, out: Path) -> None:
    import torch

    torch.set_num_threads(1)  # a shared machine: more threads only contend
    from rlvr.config import load_config
    from rlvr.data.prompts import PromptSampler
    from rlvr.launch.grpo_job import preflight
    from rlvr.learner.deepspeed_setup import free_port
    from rlvr.learner.learner import Learner
    from rlvr.rewards.service import RewardService
    from rlvr.rollout.hf_engine import HFEngine
    from rlvr.trainer.grpo_loop import Workers, run_grpo
    from rlvr.trainer.metrics import MetricsLogger

    cfg = load_config(REPO / "configs" / "tiny.yaml", [*COMMON, *VARIANTS[variant], f"run.seed={seed}",
                                                        f"run.steps={steps}", f"run.output_dir={out}",
                                                        "run.overwrite=true"])
    model_path, tokenizer, examples, _ = preflight(cfg)  # no held-out curve here
    learner = Learner(cfg, model_path, rank=0, world_size=1)
    learner.setup("127.0.0.1", free_port(), cfg.grad_accum_steps, steps * cfg.algorithm.mini_batches)
    rewards = RewardService(cfg.rewards, stop=cfg.rollout.stop)
    try:
        workers = Workers(LocalRollout(HFEngine.from_path(model_path, cfg.rollout)), rewards, LocalLearners(learner))
        logger = MetricsLogger(cfg, out)
        run_grpo(cfg, workers, tokenizer, PromptSampler(examples, cfg.run.seed), logger)
        logger.close()
    finally:
        rewards.close()


def mean_reward(path: Path, rows: slice) -> float:
    data = [json.loads(line) for line in path.read_text().splitlines()]
    return statistics.fmean(r["reward/mean"] for r in data[rows])


def summarise(out: Path, seeds: list[int], window: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = [f"| variant | first {window} steps | last {window} steps | gain | per seed (last) |",
             "|---|---|---|---|---|"]
    fig, ax = plt.subplots(figsize=(8, 5))
    for variant in VARIANTS:
        paths = [out / f"{variant}-s{s}" / "metrics.jsonl" for s in seeds]
        paths = [p for p in paths if p.exists()]
        if not paths:
            continue
        first = [mean_reward(p, slice(0, window)) for p in paths]
        last = [mean_reward(p, slice(-window, None)) for p in paths]
        f, la = statistics.fmean(first), statistics.fmean(last)
        lines.append(f"| {variant} | {f:.3f} | {la:.3f} | {la - f:+.3f} | {', '.join(f'{x:.2f}' for x in last)} |")
        curves = [[json.loads(line)["reward/mean"] for line in p.read_text().splitlines()] for p in paths]
        n = min(len(c) for c in curves)
        ax.plot(range(n), [statistics.fmean(c[i] for c in curves) for i in range(n)], label=variant)
    ax.set_xlabel("step")
    ax.set_ylabel(f"mean reward (mean of {len(seeds)} seeds)")
    ax.set_title("tiny copy-digit task, CPU, 1 learner rank")
    ax.legend()
    fig.savefig(out / "losses.png", dpi=100, bbox_inches="tight")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/bench_losses"))
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--window", type=int, default=10, help="steps averaged at the start and at the end")
    ap.add_argument("--one", type=int, metavar="SEED", help=argparse.SUPPRESS)
    ap.add_argument("--summary-only", action="store_true")
    args = ap.parse_args()
    if args.one is not None:
        for variant in args.variants:
            print(f"[bench_losses] {variant} seed {args.one}", flush=True)
            run_one(variant, args.one, args.steps, args.out / f"{variant}-s{args.one}")
        return
    if not args.summary_only:
        for seed in args.seeds:
            cmd = [sys.executable, __file__, "--one", str(seed), "--steps", str(args.steps), "--out", str(args.out),
                   "--variants", *args.variants]
            subprocess.run(cmd, check=True, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"})
    summarise(args.out, args.seeds, args.window)


if __name__ == "__main__":
    main()
