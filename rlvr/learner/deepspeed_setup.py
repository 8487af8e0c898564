"""DeepSpeed config, process-group setup and LR schedule for a learner rank."""

from __future__ import annotations

import math
import os
import socket

import torch

from rlvr.config import LearnerSection


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def init_process_group(rank: int, world_size: int, master_addr: str, master_port: int, backend: str) -> None:
    import deepspeed

    os.environ.update(
        MASTER_ADDR=master_addr, MASTER_PORT=str(master_port), RANK=str(rank), WORLD_SIZE=str(world_size),
        LOCAL_RANK="0", LOCAL_WORLD_SIZE="1",
    )
    deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False, rank=rank, world_size=world_size)


def resolve_backend(cfg: LearnerSection) -> str:
    if cfg.backend != "auto":
        return cfg.backend
    return "nccl" if torch.cuda.is_available() else "gloo"


def ds_config(cfg: LearnerSection, grad_accum_steps: int, world_size: int) -> dict:
    return {
        "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
        "gradient_accumulation_steps": grad_accum_steps,
        "train_batch_size": cfg.micro_batch_size * grad_accum_steps * world_size,
        "gradient_clipping": cfg.grad_clip,
        "zero_optimization": {"stage": cfg.zero_stage},
        "bf16": {"enabled": cfg.precision == "bf16"},
        "fp16": {"enabled": cfg.precision == "fp16"},
        # we hand DeepSpeed a torch AdamW: its fused/CPU Adam ops need compiling, which a laptop CPU run should not
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def lr_lambda(schedule: str, warmup: int, total: int):
    """Multiplier of the peak LR at optimizer step s: linear warmup, then constant, linear or cosine decay to 0."""

    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant" or total <= warmup:
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 1.0 - progress if schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    return f
