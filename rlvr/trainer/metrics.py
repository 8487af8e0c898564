"""Step metrics: computed from a step's results (pure), then written to every enabled sink.

`MetricsLogger` is the one place sinks live: a JSONL file, a line on stdout, Ray metrics (Prometheus, and so the
Ray dashboard's charts), TensorBoard, Weights & Biases, and a progress bar with ETA on the driver. A resumed run
drops what the interrupted run logged after its checkpoint, so every step appears once in every sink.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rlvr.algo.token_selection import selection_metrics
from rlvr.config import ConfigError, RunConfig


def rollout_metrics(rewards: list[float], lengths: list[int], groups_zero_var: float) -> dict[str, float]:
    return {
        "reward/mean": statistics.fmean(rewards),
        "reward/std": statistics.pstdev(rewards),
        "response/length_mean": statistics.fmean(lengths),
        "response/length_max": float(max(lengths)),
        "groups/zero_variance_fraction": groups_zero_var,
    }


def learner_metrics(stats: dict[str, float]) -> dict[str, float]:
    """Learner sums (over tokens and ranks) turned into per-token means: every `<name>_sum` the loss (or the
    learner) reports becomes `learner/<name>`, so a new loss's statistics are logged without a change here."""
    tokens = max(stats.get("tokens", 0.0), 1.0)
    out = {f"learner/{key.removesuffix('_sum')}": v / tokens for key, v in stats.items() if key.endswith("_sum")}
    out["learner/grad_norm"], out["learner/lr"] = stats["grad_norm"], stats["lr"]
    if "sequence_tokens" in stats:  # packed learner: prompt + completion tokens it trained on (all ranks)
        out["learner/sequence_tokens"] = stats["sequence_tokens"]
    return {**out, **selection_metrics(stats)}


def prometheus_name(key: str) -> str:
    """`reward/mean` -> `rlvr_reward_mean` (Ray exports it as `ray_rlvr_reward_mean`)."""
    return "rlvr_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)


class RayMetricsSink:
    """One `ray.util.metrics.Gauge` per metric, tagged with the run name; Ray's metrics agent exports them for
    Prometheus to scrape (`ray start --metrics-export-port`), which is what the dashboard's Grafana panels read."""

    def __init__(self, run_name: str):
        from ray.util.metrics import Gauge

        self._gauge, self._tags, self._gauges = Gauge, {"run": run_name}, {}

    def __call__(self, step: int, metrics: dict[str, float]) -> None:
        for key, value in {"step": float(step + 1), **metrics}.items():
            if key not in self._gauges:
                self._gauges[key] = self._gauge(prometheus_name(key), description=f"rlvr {key}", tag_keys=("run",))
            self._gauges[key].set(float(value), tags=self._tags)


class TensorBoardSink:
    def __init__(self, log_dir: Path, start_step: int):
        from torch.utils.tensorboard import SummaryWriter

        # purge_step hides events an interrupted run wrote after the checkpoint it is resumed from
        self.writer = SummaryWriter(str(log_dir), purge_step=start_step or None)

    def __call__(self, step: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbSink:
    """Offline unless a W&B key is configured, so a run on a machine without network still logs (`wandb sync`
    uploads the run directory later)."""

    def __init__(self, cfg: RunConfig, out_dir: Path):
        try:
            import wandb
        except ImportError:
            raise ConfigError("logging.wandb is on but wandb is not installed: pip install wandb "
                              "(or pip install -e '.[logging]')") from None
        mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
        # the id is derived from the output directory, so a resumed run continues the same W&B run
        run_id = f"{cfg.run.name}-{hashlib.sha1(str(out_dir.resolve()).encode()).hexdigest()[:8]}"
        self.run = wandb.init(project=cfg.logging.wandb_project, name=cfg.run.name, id=run_id, resume="allow",
                              dir=str(out_dir), mode=mode, config=cfg.model_dump(mode="json"))

    def __call__(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log(metrics, step=step)

    def close(self) -> None:
        self.run.finish()


class ProgressBar:
    def __init__(self, total: int, start_step: int):
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=start_step, desc="rlvr", unit="step", file=sys.stderr,
                        dynamic_ncols=True, mininterval=1.0)

    def __call__(self, step: int, metrics: dict[str, float]) -> None:
        if "reward/mean" in metrics:
            self.bar.set_postfix(reward=f"{metrics['reward/mean']:.3f}", refresh=False)
        elif "lm/loss" in metrics:
            self.bar.set_postfix(loss=f"{metrics['lm/loss']:.4f}", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


@dataclass(frozen=True)
class Display:
    """What the stdout line shows: a stage's own step count, print interval and keys (pretraining and SFT count
    their steps in their own section and show loss and tokens/s rather than rewards)."""

    total_steps: int
    every: int
    shown: tuple[str, ...] = ("reward/mean", "groups/zero_variance_fraction", "learner/pg_loss", "time/step_s")
    label: str = ""


class MetricsLogger:
    """Every enabled sink, fed one step at a time, for every stage. `on_log(step)` runs after the sinks
    (fault-injection tests use it to act between two steps). `display`: default, the GRPO stage's."""

    def __init__(self, cfg: RunConfig, out_dir: Path, start_step: int = 0,
                 on_log: Callable[[int], None] | None = None, display: Display | None = None):
        lc = cfg.logging
        self.cfg, self.on_log = cfg, on_log
        self.display = display or Display(cfg.run.steps, lc.log_every)
        self.path = out_dir / "metrics.jsonl" if lc.jsonl else None
        if self.path is not None:
            drop_steps_from(self.path, start_step)
        self.sinks: list = [RayMetricsSink(cfg.run.name)] if _ray_connected() else []
        if lc.tensorboard:
            self.sinks.append(TensorBoardSink(out_dir / "tensorboard", start_step))
        if lc.wandb:
            self.sinks.append(WandbSink(cfg, out_dir))
        self.bar = ProgressBar(self.display.total_steps, start_step) if lc.progress_bar else None
        if self.bar is not None:
            self.sinks.append(self.bar)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(json.dumps({"step": step, **metrics}) + "\n")
        d = self.display
        if step % d.every == 0:
            shown = " ".join(f"{k.split('/')[-1]}={metrics[k]:.4g}" for k in d.shown if k in metrics)
            self._print(f"[rlvr] {d.label}step {step + 1}/{d.total_steps} {shown}")
        for sink in self.sinks:
            sink(step, metrics)
        if self.on_log is not None:
            self.on_log(step)

    def _print(self, line: str) -> None:
        if self.bar is not None:
            self.bar.bar.write(line, file=sys.stdout)  # keeps the bar below the lines instead of cutting them
        else:
            print(line, flush=True)

    def close(self) -> None:
        for sink in self.sinks:
            if hasattr(sink, "close"):
                sink.close()


def drop_steps_from(path: Path, start_step: int) -> None:
    """Remove rows of steps >= start_step: a resumed run logs them again (written to a temporary file and renamed,
    so a crash here leaves the old file)."""
    if not path.is_file():
        return
    rows = path.read_text().splitlines()
    keep = [row for row in rows if row.strip() and json.loads(row)["step"] < start_step]
    if len(keep) != len(rows):
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(row + "\n" for row in keep))
        tmp.replace(path)


def _ray_connected() -> bool:
    import ray

    return ray.is_initialized()
