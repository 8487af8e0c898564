"""Issue 16: the largest model one GPU can GRPO-train with vLLM colocated, full fine-tune and QLoRA.

Random-weight Qwen2.5-shaped models (benchmarks/gpu/prepare_models.py: 1.5B, 3B, 7B, 14B, ...) get a few GRPO steps
each through `rlvr train` (configs/gpu_smollm2_grpo_bench.yaml with the overrides below): vLLM and the learner on
the same GPU, vLLM asleep (level 2) while the learner trains, merged weights into vLLM by CUDA IPC after every
update. The workload is small and fixed, so a size passes or fails on memory, not on time: 8 prompts x G=8 = 64
completions of exactly 256 new tokens (vLLM's ignore_eos), GSM8K questions as plain text, packed micro-batches of
8,192 tokens, chunked logprobs, activation checkpointing.

The sizes of one `--variant` are tried smallest first; the first that fails (out of memory, an error, or no step
within the timeout) ends the call: the one before it is the largest reached. With `--descending` they are tried
largest first and the first that passes ends the call. A later call may go on from there
(the attempts of every call are kept). Per attempt: the return code,
steps done, the median of every `time/*` phase after the first step, the peak GPU memory in use (nvidia-smi,
learner and vLLM together, sampled every second) and the log lines that name the failure. Results are merged into
`--out` across calls (one call per variant when a lease's call limit is shorter than the search).

    python benchmarks/gpu/bench_largest.py --models /root/models --variant full --sizes qwen1_5b,qwen3b,qwen7b \\
        --out /root/runs/largest.json
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_grpo_matrix import count_params, device_name, run_rlvr  # noqa: E402
from phase import nvidia_smi  # noqa: E402

VARIANTS = {  # name: learner overrides
    "full": ["learner.lr=1e-6"],
    # QLoRA: an NF4 base under bf16 adapters; vLLM still holds the model in bf16 (merged weights each sync)
    "qlora": ["learner.lora.r=16", "learner.lora.quantize=nf4", "learner.lr=1e-4"],
}
WORKLOAD = dict(prompts=8, G=8, max_new=256, rlvr=[
    "rollout.colocate=true", "rollout.overlap=false", "rollout.weight_sync=cuda_ipc", "rollout.sleep_level=2",
    "rollout.ignore_eos=true", "rollout.max_model_len=1024", "rollout.kv_cache_gb=4",
    "rollout.cudagraph_capture_sizes=[8,16,32,64]",  # capture what a 64-completion step uses, not vLLM's 67 sizes
    "data.chat_template=false", "data.prompt_template='{prompt}'",
    "learner.gradient_checkpointing=true", "learner.max_tokens_per_micro_batch=8192",
    "learner.logprob_chunk_tokens=1024", "learner.fused_adamw=true",
])
KV_GIB, ENGINE_OVERHEAD_GIB = 4, 4  # vLLM's KV cache (fixed above) and its activations, CUDA graphs, allocator
FAILURE = re.compile(r"out of memory|OutOfMemory|CUDA error|error:|exceeds|Traceback", re.IGNORECASE)


def gpu_total_gib() -> float:
    total_mib = nvidia_smi("memory.total")
    return float(total_mib) / 1024 if total_mib else 0.0


class PeakMemory:
    """The most GPU memory in use (MiB, every process on GPU 0) while the block runs, from nvidia-smi each second."""

    def __init__(self):
        self.peak_mib, self._stop = 0.0, threading.Event()

    def _poll(self) -> None:
        while not self._stop.wait(1.0):
            used_mib = nvidia_smi("memory.used")
            if used_mib is None:
                return  # no GPU (a CPU dry run): no figure
            self.peak_mib = max(self.peak_mib, float(used_mib))

    def __enter__(self):
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=15)


def engine_memory_fraction(params: int, total_gib: float) -> float:
    """vLLM's gpu_memory_utilization: its bf16 weights, the KV cache and its overhead, as a share of the GPU (vLLM
    refuses to start when that much is not free, and the learner needs the rest)."""
    if total_gib <= 0:
        return 0.3
    return round(min(0.9, (2 * params / 2**30 + KV_GIB + ENGINE_OVERHEAD_GIB) / total_gib), 3)


def failure_lines(log: Path, limit: int = 6) -> list[str]:
    """The log lines that say why a run failed (the first few distinct ones, shortened)."""
    if not log.is_file():
        return []
    seen: list[str] = []
    for line in log.read_text(errors="replace").splitlines():
        line = line.strip()[:300]
        if FAILURE.search(line) and line not in seen:
            seen.append(line)
    return seen[:limit]


def attempt(args, size: str, total_gib: float) -> dict:
    # built in a process of its own: CUDA initialised here would hold memory beside the run for its whole length
    subprocess.run([sys.executable, str(HERE / "prepare_models.py"), "--out", args.models, "--only", size], check=True,
                   timeout=900)
    model = Path(args.models) / size
    params = count_params(str(model))
    util = engine_memory_fraction(params, total_gib)
    sets = [*VARIANTS[args.variant], f"rollout.gpu_memory_utilization={util}", *args.rlvr_set]
    run_args = argparse.Namespace(workdir=args.workdir, data=args.data, steps=args.steps, config=args.config,
                                  rlvr_set=sets, metrics_dir=None, drop=1, drop_last=0)  # colocated: no overlap tail
    name = f"{args.variant}_{size}"
    log = Path(args.workdir) / f"{name}.log"
    with PeakMemory() as peak:
        res = run_rlvr(run_args, name, WORKLOAD, str(model), args.timeout, log=str(log))
    phases = res.pop("phases_median_s")
    if args.drop_models:  # a 64 GB disk holds the 14B shape (30 GB) only once the smaller ones have gone
        shutil.rmtree(model, ignore_errors=True)
    # a size passes when every step ran and the run ended cleanly: a run cut by the timeout or an error does not
    passed = res["rc"] == 0 and res["steps"] >= args.steps
    return {"size": size, "params": params, "passed": passed, "rc": res["rc"], "steps": res["steps"],
            "wall_s": res["wall_s"], "engine_memory_fraction": util, "step_s": res["step_s"],
            "median_s": {k.removeprefix("time/"): v for k, v in phases.items()},
            "peak_gpu_gib": round(peak.peak_mib / 1024, 2) if peak.peak_mib else None,
            "failure": [] if passed else failure_lines(log)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="/root/models")
    ap.add_argument("--variant", choices=list(VARIANTS), required=True)
    ap.add_argument("--sizes", required=True,
                    help="comma-separated prepare_models.QWEN names in the order tried (smallest first unless "
                         "--descending)")
    ap.add_argument("--descending", action="store_true",
                    help="--sizes largest first, stopping at the first that passes (fewer attempts, when a lease is "
                         "short and the guess is good)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=300, help="seconds per attempt")
    ap.add_argument("--data", default=".gpudata/gsm8k/train.jsonl")
    ap.add_argument("--config", default="configs/gpu_smollm2_grpo_bench.yaml")
    ap.add_argument("--rlvr-set", action="append", default=[], help="extra rlvr override (CPU dry runs)")
    ap.add_argument("--drop-models", action="store_true", help="delete each model directory after its attempt")
    ap.add_argument("--workdir", default="/tmp/bench_largest")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    report = json.loads(out.read_text()) if out.is_file() else {"device": device_name(), "variants": {}}
    entry = report["variants"].setdefault(args.variant, {"overrides": VARIANTS[args.variant] + WORKLOAD["rlvr"],
                                                         "attempts": [], "largest": None})
    total = gpu_total_gib()
    for size in args.sizes.split(","):
        result = attempt(args, size, total)
        result["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        # a size tried again (a later call) replaces its earlier attempt; the largest is over every call's
        entry["attempts"] = [a for a in entry["attempts"] if a["size"] != size] + [result]
        passed = [a for a in entry["attempts"] if a["passed"]]
        best = max(passed, key=lambda a: a["params"]) if passed else None
        entry["largest"] = {k: best[k] for k in ("size", "params", "median_s", "peak_gpu_gib")} if best else None
        print(json.dumps({args.variant: result}), flush=True)
        out.write_text(json.dumps(report, indent=1))
        if result["passed"] == args.descending:  # going up: the first failure ends it; going down: the first pass
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
