"""GRPO step time and samples/s: rlvr against TRL's GRPOTrainer, both with vLLM colocated on one GPU, run one after
the other in separate processes in one command (so both see the same machine and the same warm caches).

- rlvr: `python3 -m rlvr train configs/gpu_smollm2_grpo_bench.yaml` (vLLM + DeepSpeed learner sharing the GPU by
  Ray fractional GPUs, CUDA IPC weight sync, reward on CPU); step times are `time/step_s` from its metrics.jsonl.
  If that run fails, it is run once more with `rollout.weight_sync=object_store` (reported as such).
- TRL: benchmarks/gpu/trl_grpo.py on the same model, prompts, G, lengths, batch and reward function.

Both: median step time after dropping the first `--drop` steps (warm-up); samples/s = samples per step / median.

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
PHASES = ("time/rollout_s", "time/reward_s", "time/learn_s", "time/weight_sync_s", "time/step_s")


def median_after(values: list[float], drop: int) -> float | None:
    kept = values[drop:]
    return statistics.median(kept) if kept else None


def gpu_memory() -> str:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def run_rlvr(args, overrides: list[str], timeout_s: float) -> dict:
    out_dir = Path(args.workdir) / "rlvr"
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
        shutil.copy(metrics_file, args.metrics_copy)
    res = {"side": "rlvr", "rc": rc, "wall_s": round(wall, 1), "overrides": overrides, "steps": len(rows),
           "step_s": [round(r["time/step_s"], 4) for r in rows],
           "phases_median_s": {k: median_after([r[k] for r in rows if k in r], args.drop) for k in PHASES},
           "reward_mean": [r.get("reward/mean") for r in rows],
           "completion_length_mean": [r.get("response/length_mean") for r in rows]}
    print(f"rlvr rc={rc} steps={len(rows)} wall={wall:.0f}s step_s={res['step_s']}  GPU memory after: {gpu_memory()}",
          flush=True)
    return res


def run_trl(args, timeout_s: float) -> dict:
    out = Path(args.workdir) / "trl.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, str(REPO / "benchmarks/gpu/trl_grpo.py"), "--model", args.model, "--data", args.data,
           "--steps", str(args.steps), "--out", str(out), "--workdir", str(Path(args.workdir) / "trl")]
    print("+ " + " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    rc = run_streaming(cmd, timeout_s)
    res = json.loads(out.read_text()) if out.is_file() else {"side": "trl", "steps": 0, "step_s": []}
    res.update(rc=rc, wall_s=round(time.perf_counter() - t0, 1))
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
    ap.add_argument("--budget-s", type=float, default=560, help="both sides together, fallback included")
    ap.add_argument("--rlvr-set", action="append", default=[], help="extra rlvr override (CPU dry runs)")
    ap.add_argument("--only", choices=["rlvr", "trl"], default=None)
    ap.add_argument("--workdir", default="/tmp/bench_grpo")
    ap.add_argument("--metrics-copy", default=None, help="copy rlvr's metrics.jsonl here")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    deadline = time.monotonic() + args.budget_s
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    result: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "steps": args.steps,
                    "drop": args.drop, "samples_per_step": args.samples_per_step, "model": args.model}

    def save() -> None:
        Path(args.out).write_text(json.dumps(result, indent=1))

    if args.only != "trl":
        rlvr = run_rlvr(args, [], min(330, deadline - time.monotonic() - 200))
        if rlvr["steps"] < args.steps and args.only is None and deadline - time.monotonic() > 330:
            result["rlvr_cuda_ipc_failed"] = rlvr
            rlvr = run_rlvr(args, ["rollout.weight_sync=object_store"], min(300, deadline - time.monotonic() - 200))
        result["rlvr"] = rlvr
        save()
    if args.only != "rlvr":
        result["trl"] = run_trl(args, max(60, deadline - time.monotonic()))
        save()
    for side in ("rlvr", "trl"):
        if side in result:
            result[f"{side}_summary"] = summarize(result[side], args.drop, args.samples_per_step)
    a, b = result.get("rlvr_summary", {}).get("samples_per_s"), result.get("trl_summary", {}).get("samples_per_s")
    result["ratio_rlvr_over_trl"] = a / b if a and b else None
    save()
    print(json.dumps({k: v for k, v in result.items() if k.endswith("summary") or k.startswith("ratio")}, indent=1))
    return 0 if result["ratio_rlvr_over_trl"] or args.only else 1


if __name__ == "__main__":
    sys.exit(main())
