"""The pretraining and SFT stages' controller loop, read top to bottom:

    packed rows (reshuffled epochs) -> one optimizer step on every learner rank -> loss, tokens/s
    -> checkpoint -> at the end, the HF export (optionally interpolated between the stage's start and end)

Metrics go through the same `MetricsLogger` as GRPO's (JSONL, Ray metrics, TensorBoard, W&B, progress bar).

Both stages are the same loop: what differs is the data (`rlvr.data.lm_data`: plain text with loss on every token,
or chats with loss on the assistant's tokens), which is decided before the loop starts.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal, Protocol

from rlvr.algo.token_selection import selection_metrics
from rlvr.config import LMStageSection, RunConfig
from rlvr.data.packing import PAD_DOC, PackedRow
from rlvr.data.sampler import EpochSampler
from rlvr.trainer.metrics import Display, MetricsLogger
from rlvr.utils import preempt
from rlvr.utils.checkpoint import CheckpointDir

StageKind = Literal["pretrain", "sft"]


class LMLearners(Protocol):
    def train_lm(self, rows: list[PackedRow]) -> dict[str, float]: ...
    def save_checkpoint(self, directory: str, client_state: dict) -> None: ...
    def load_checkpoint(self, directory: str) -> dict: ...
    def export_interpolated(self, directory: str, alpha: float) -> None: ...


def lm_section(cfg: RunConfig, kind: StageKind) -> LMStageSection:
    return cfg.pretrain if kind == "pretrain" else cfg.sft


def step_metrics(stats: dict[str, float], batch: list[PackedRow], seconds: float, epochs: float) -> dict[str, float]:
    tokens = sum(int((r.doc_ids_L != PAD_DOC).sum()) for r in batch)
    return {"lm/loss": stats["loss_sum"] / max(stats["tokens"], 1.0), "lm/loss_tokens": stats["tokens"],
            "throughput/tokens_per_s": tokens / max(seconds, 1e-9), "learner/grad_norm": stats["grad_norm"],
            "learner/lr": stats["lr"], "data/epochs": epochs, "time/step_s": seconds, **selection_metrics(stats)}


def run_lm(kind: StageKind, cfg: RunConfig, learners: LMLearners, rows: list[PackedRow]) -> dict[str, float]:
    lm = lm_section(cfg, kind)
    out_dir = Path(cfg.run.output_dir)
    ckpt = CheckpointDir(out_dir, cfg.checkpoint.keep_last)
    sampler = EpochSampler(rows, cfg.run.seed)
    start = resume(cfg, learners, sampler, ckpt) if cfg.checkpoint.resume else 0
    print(f"[rlvr] {kind}: {len(rows)} packed rows of {lm.seq_len} tokens, {lm.steps} steps of {lm.batch_rows} rows",
          flush=True)
    metrics: dict[str, float] = {}
    display = Display(lm.steps, lm.log_every, ("lm/loss", "throughput/tokens_per_s", "learner/lr", "data/epochs"),
                      label=f"{kind} ")
    logger = MetricsLogger(cfg, out_dir, start, display=display)
    try:
        for step in range(start, lm.steps):
            t0 = time.perf_counter()
            batch = sampler.next_batch(lm.batch_rows)
            stats = learners.train_lm(batch)
            metrics = step_metrics(stats, batch, time.perf_counter() - t0, sampler.epochs_done)
            logger.log(step, metrics)
            done = step + 1
            final = done == lm.steps
            if (cfg.checkpoint.every and done % cfg.checkpoint.every == 0) or (final and cfg.checkpoint.save_final) \
                    or preempt.requested():
                save(learners, ckpt, sampler, done, lm.interpolate_alpha if final else 1.0)
            preempt.stop_if_requested(done, lm.steps, cfg.run.output_dir)
    finally:
        logger.close()
    return metrics


def save(learners: LMLearners, ckpt: CheckpointDir, sampler: EpochSampler, step: int, alpha: float) -> Path:
    staging = ckpt.staging(step)
    learners.save_checkpoint(str(staging), {"step": step})
    if alpha < 1.0:
        learners.export_interpolated(str(staging), alpha)
    return ckpt.commit(staging, {"step": step, "sampler": sampler.state_dict(), "interpolate_alpha": alpha})


def resume(cfg: RunConfig, learners: LMLearners, sampler: EpochSampler, ckpt: CheckpointDir) -> int:
    found = ckpt.latest()
    if found is None:
        return 0
    path, state = found
    learners.load_checkpoint(str(path))
    sampler.load_state_dict(state["sampler"])
    print(f"[rlvr] resumed from {path} at step {state['step']}", flush=True)
    return int(state["step"])
