"""Step metrics: computed from a step's results (pure), then written to every enabled sink."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from rlvr.config import RunConfig


def rollout_metrics(rewards: list[float], lengths: list[int], groups_zero_var: float) -> dict[str, float]:
    return {
        "reward/mean": statistics.fmean(rewards),
        "reward/std": statistics.pstdev(rewards),
        "response/length_mean": statistics.fmean(lengths),
        "response/length_max": float(max(lengths)),
        "groups/zero_variance_fraction": groups_zero_var,
    }


def learner_metrics(stats: dict[str, float], loss_agg: str) -> dict[str, float]:
    """Learner sums (over tokens and ranks) turned into per-token means."""
    tokens = max(stats.get("tokens", 0.0), 1.0)
    out = {
        "learner/pg_loss": stats["pg_loss_sum"] / tokens,
        "learner/clip_fraction": stats["clipped_sum"] / tokens,
        "learner/entropy": stats["entropy_sum"] / tokens,
        "learner/grad_norm": stats["grad_norm"],
        "learner/lr": stats["lr"],
    }
    if "kl_sum" in stats:
        out["learner/kl"] = stats["kl_sum"] / tokens
    return out


class MetricsLogger:
    """JSONL file plus a one-line summary on stdout; more sinks (TensorBoard, W&B, Ray metrics) plug in here."""

    SHOWN = ("reward/mean", "groups/zero_variance_fraction", "learner/pg_loss", "time/step_s")

    def __init__(self, cfg: RunConfig, out_dir: Path):
        self.cfg = cfg
        self.path = out_dir / "metrics.jsonl" if cfg.logging.jsonl else None

    def log(self, step: int, metrics: dict[str, float]) -> None:
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(json.dumps({"step": step, **metrics}) + "\n")
        if step % self.cfg.logging.log_every == 0:
            shown = " ".join(f"{k.split('/')[-1]}={metrics[k]:.4g}" for k in self.SHOWN if k in metrics)
            print(f"[rlvr] step {step + 1}/{self.cfg.run.steps} {shown}", file=sys.stdout, flush=True)

    def close(self) -> None:
        pass
