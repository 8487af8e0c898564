"""DeepSpeed config, process-group setup and LR schedule for a learner rank."""

from __future__ import annotations

import math
import os
import socket
import time
from pathlib import Path

import torch

from rlvr.config import LearnerSection


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


SHM_OP = "deepspeed_shm_comm"  # the op DeepSpeed compiles on first use on CPU (deepspeed/comm/torch.py)
STALE_LOCK_S = 600.0  # its build takes about a minute of two cores; a lock ten minutes old has no builder left


def clear_stale_build_lock(name: str = SHM_OP, older_than_s: float = STALE_LOCK_S) -> Path | None:
    """A JIT build killed midway (a Ctrl-C or a timeout during a first run) leaves torch's `lock` file in the build
    directory, and every later build of the op waits on it forever without a word. Remove such a lock, saying so;
    returns its path if one was removed. (A run started less than STALE_LOCK_S after the kill still waits: torch's
    lock names no owner, so a younger lock cannot be told from a build in progress.)"""
    from torch.utils.cpp_extension import _get_build_directory

    lock = Path(_get_build_directory(name, verbose=False)) / "lock"
    try:
        age = time.time() - lock.stat().st_mtime
    except FileNotFoundError:
        return None
    if age < older_than_s:
        return None  # another process may be building it right now
    lock.unlink(missing_ok=True)
    print(f"[rlvr] removed a stale build lock of {name} ({age / 60:.0f} min old; its build was killed): {lock}",
          flush=True)
    return lock


def init_process_group(rank: int, world_size: int, master_addr: str, master_port: int, backend: str) -> None:
    import deepspeed

    clear_stale_build_lock()
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
