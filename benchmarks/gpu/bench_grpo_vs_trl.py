"""GRPO step time and samples/s: rlvr against TRL's GRPOTrainer, both with vLLM colocated on one GPU, run one after
the other in separate processes in one command (so both see the same machine and the same warm caches).

- rlvr: `python3 -m rlvr train configs/gpu_smollm2_grpo_bench.yaml` (vLLM + DeepSpeed learner sharing the GPU by
  Ray fractional GPUs, CUDA IPC weight sync, reward on CPU) with each variant's overrides (RLVR_VARIANTS: vLLM
  asleep while the learner trains, or awake and overlapped with it); step times are `time/step_s` from its
  metrics.jsonl.
- TRL: benchmarks/gpu/trl_grpo.py on the same model, prompts, G, lengths, batch and reward function, per
  micro-batch size asked for (TRL gets every micro-batch size rlvr gets, so neither side wins by that alone).

`--sides` lists the runs in order (a side is skipped when the budget left is too small). Every side: median step
time after dropping the first `--drop` steps (warm-up); samples/s = samples per step / median. The headline ratio
is the best rlvr side over the best TRL side.

    python benchmarks/gpu/bench_grpo_vs_trl.py --model /root/models/smollm2 --out bench.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from phase import run_streaming  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
OVERLAP_MICRO64 = ["rollout.colocate=false", "rollout.overlap=true", "learner.micro_batch_size=64"]
RLVR_VARIANTS = {
    "colocate": [],  # the config as written: vLLM sleeps while the learner trains
    "overlap": ["rollout.colocate=false", "rollout.overlap=true"],
    "overlap_micro64": OVERLAP_MICRO64,
    "colocate_micro64": ["learner.micro_batch_size=64"],
    # vLLM returns no logprobs; the learner recomputes the old policy's from a copy of its previous weights
    "overlap_micro64_learnerlp": [*OVERLAP_MICRO64, "rollout.overlap_old_logprobs=learner"],
    # the step's prompts split across N vLLM engines on the one GPU (a fixed KV cache each: they start together)
    "overlap_micro64_x2": [*OVERLAP_MICRO64, "rollout.num_actors=2", "rollout.resources.num_gpus=0.25",
                           "rollout.gpu_memory_utilization=0.12", "rollout.kv_cache_gb=2"],
    "overlap_micro64_x4": [*OVERLAP_MICRO64, "rollout.num_actors=4", "rollout.resources.num_gpus=0.125",
                           "rollout.gpu_memory_utilization=0.06", "rollout.kv_cache_gb=1"],
}
PHASES = ("time/wait_rollout_s", "time/rollout_s", "time/reward_s", "time/learn_s", "time/weight_sync_s", "time/step_s")


def median_after(values: list[float], drop: int) -> float | None:
    kept = values[drop:]
    return statistics.median(kept) if kept else None


def gpu_memory() -> str:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def run_rlvr(args, variant: str, timeout_s: float) -> dict:
    overrides = RLVR_VARIANTS[variant]
    out_dir = Path(args.workdir) / f"rlvr_{variant}"
    shutil.rmtree(out_dir, ignore_errors=True)
    cmd = [sys.executable, "-m", "rlvr", "train", args.config, f"--set=run.output_dir={out_dir}",
           f"--set=model.path={args.model}", f"--set=data.path={args.data}", f"--set=run.steps={args.steps}",
           *[f"--set={o}" for o in args.rlvr_set + overrides]]
    print("+ " + " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    rc = run_streaming(cmd, timeout_s)
    wall = time.perf_counter() - t0
    metrics_file = out_dir / "metrics.jsonl"
    rows = [json.loads(l) for l in metrics_file.read_text().splitlines() if l.strip()] if metrics_file.is_file() else []
    if args.metrics_copy and rows:
        shutil.copy(metrics_file, args.metrics_copy.replace(".jsonl", f"_{variant}.jsonl"))
    res = {"side": f"rlvr:{variant}", "rc": rc, "wall_s": round(wall, 1), "overrides": overrides, "steps": len(rows),
           "step_s": [round(r["time/step_s"], 4) for r in rows],
           "phases_median_s": {k: median_after([r[k] for r in rows if k in r], args.drop) for k in PHASES},
           "reward_mean": [r.get("reward/mean") for r in rows],
           "completion_length_mean": [r.get("response/length_mean") for r in rows]}
    print(f"rlvr rc={rc} steps={len(rows)} wall={wall:.0f}s step_s={res['step_s']}  GPU memory after: {gpu_memory()}",
          flush=True)
    return res


def run_trl(args, micro: str, timeout_s: float) -> dict:
    out = Path(args.workdir) / f"trl_{micro}.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, str(REPO / "benchmarks/gpu/trl_grpo.py"), "--model", args.model, "--data", args.data,
           "--steps", str(args.steps), "--micro", micro, "--out", str(out),
           "--workdir", str(Path(args.workdir) / "trl")]
    print("+ " + " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    rc = run_streaming(cmd, timeout_s)
    res = json.loads(out.read_text()) if out.is_file() else {"steps": 0, "step_s": []}
    res.update(side=f"trl:micro{micro}", rc=rc, wall_s=round(time.perf_counter() - t0, 1))
    print(f"trl rc={rc} step_s={res['step_s']}  GPU memory after: {gpu_memory()}", flush=True)
    return res


def summarize(side: dict, drop: int, samples: int) -> dict:
    med = median_after(side.get("step_s", []), drop)
    lengths = [x for x in side.get("completion_length_mean", [])[drop:] if x is not None]
    return {"median_step_s": med, "samples_per_s": samples / med if med else None,
            "mean_completion_tokens": statistics.fmean(lengths) if lengths else None}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="/root/models/smollm2")
    ap.add_argument("--data", default=".gpudata/gsm8k/train.jsonl")
    ap.add_argument("--config", default="configs/gpu_smollm2_grpo_bench.yaml")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--drop", type=int, default=2)
    ap.add_argument("--samples-per-step", type=int, default=64)
    ap.add_argument("--budget-s", type=float, default=570, help="all sides together")
    ap.add_argument("--sides", default="rlvr:colocate,trl:16",
                    help=f"comma list of rlvr:VARIANT ({', '.join(RLVR_VARIANTS)}) and trl:MICRO_BATCH, run in order")
    ap.add_argument("--min-side-s", type=float, default=110, help="skip a side when less budget than this is left")
    ap.add_argument("--rlvr-set", action="append", default=[], help="extra rlvr override (CPU dry runs)")
    ap.add_argument("--workdir", default="/tmp/bench_grpo")
    ap.add_argument("--metrics-copy", default=None, help="copy each rlvr side's metrics.jsonl here (+ _VARIANT)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    deadline = time.monotonic() + args.budget_s
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    result: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "steps": args.steps,
                    "drop": args.drop, "samples_per_step": args.samples_per_step, "model": args.model,
                    "sides": {}, "summary": {}, "skipped": []}

    def save() -> None:
        Path(args.out).write_text(json.dumps(result, indent=1))

    for side in args.sides.split(","):
        kind, _, what = side.partition(":")
        left = deadline - time.monotonic()
        if left < args.min_side_s:
            result["skipped"].append(side)
            continue
        res = run_rlvr(args, what, min(330, left)) if kind == "rlvr" else run_trl(args, what, min(240, left))
        result["sides"][side] = res
        result["summary"][side] = summarize(res, args.drop, args.samples_per_step)
        save()
    best = {k: max((v["samples_per_s"] or 0 for s, v in result["summary"].items() if s.startswith(k)), default=0)
            for k in ("rlvr", "trl")}
    result["ratio_best_rlvr_over_best_trl"] = best["rlvr"] / best["trl"] if best["rlvr"] and best["trl"] else None
    save()
    print(json.dumps({"summary": result["summary"], "ratio": result["ratio_best_rlvr_over_best_trl"],
                      "skipped": result["skipped"]}, indent=1))
    return 0 if result["summary"] else 1


if __name__ == "__main__":
    sys.exit(main())
