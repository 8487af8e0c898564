"""The GRPO throughput matrix of issue 20: rlvr and TRL 1.16 side by side, one process after the other in one
command, on three workloads (same model, prompts, G, lengths, batch and reward on both sides):

- W1: SmolLM2-135M-Instruct, 8 prompts x G=8, <= 256 new tokens (GSM8K prompts as chat);
- W2: SmolLM2-135M-Instruct, 32 prompts x G=16 = 512 completions, <= 512 new tokens;
- W3: a Qwen2.5-0.5B-shaped model with random weights (benchmarks/gpu/prepare_models.py), 64 prompts x G=8 = 512
  completions of exactly 1,024 new tokens on both sides (vLLM's ignore_eos), GSM8K questions as plain text.

rlvr: `python3 -m rlvr train configs/gpu_smollm2_grpo_bench.yaml` with the workload's overrides (vLLM awake and
overlapped with the learner, packed micro-batches, chunked logprobs). TRL: benchmarks/gpu/trl_grpo.py at the
workload's micro-batch. Per side: median s/step of the steady steps (not the first `--drop`, nor the last
`--drop-last`: an overlapped run's last step generates nothing beside its update), completions/s, rollout tokens/s
(generated tokens / rollout seconds), learner tokens/s (prompt + completion tokens / learner seconds) and learner
model-FLOPs utilisation = 6 x parameters x trained tokens / learner seconds / 989e12 (H100 SXM bf16 dense peak).
rlvr's learner seconds are its `time/learn_s`; TRL's are its step minus its timed generation+scoring call.

Writes OUT (all sides, all figures) and, per workload, a row with `workload, rlvr_s_per_step, trl_s_per_step,
ratio (TRL/rlvr), learner_mfu (rlvr's), device` into --matrix (merged with rows already there: one call per workload
when a lease's call limit is shorter than the matrix).

    python benchmarks/gpu/bench_grpo_matrix.py --models /root/models --workloads W3 --out w3.json \\
        --matrix benchmarks/gpu/results/DATE-h100-grpo-matrix.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from phase import nvidia_smi, run_streaming  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PEAK_FLOPS = 989e12  # H100 SXM, bf16 dense
OVERLAP = ["rollout.colocate=false", "rollout.overlap=true", "learner.fused_adamw=true"]
WORKLOADS = {
    "W1": dict(model="smollm2", prompts=8, G=8, max_new=256, trl_micro=64, plain=False, ignore_eos=False,
               rlvr=[*OVERLAP, "learner.max_tokens_per_micro_batch=16384", "learner.logprob_chunk_tokens=4096"]),
    # max_num_seqs 512: all of a step's 512 completions decode in one wave (vLLM's default is 256 at a time)
    "W2": dict(model="smollm2", prompts=32, G=16, max_new=512, trl_micro=32, plain=False, ignore_eos=False,
               rlvr=[*OVERLAP, "learner.max_tokens_per_micro_batch=16384", "learner.logprob_chunk_tokens=4096",
                     "rollout.max_num_seqs=512"]),
    # GSM8K questions as plain text through SmolLM2's tokenizer (benchmarks/gpu/prepare_models.py says why)
    "W3": dict(model="qwen05b", prompts=64, G=8, max_new=1024, trl_micro=8, plain=True, ignore_eos=True,
               rlvr=[*OVERLAP, "learner.max_tokens_per_micro_batch=16384", "learner.logprob_chunk_tokens=2048",
                     "data.chat_template=false", "data.prompt_template='{prompt}'", "rollout.ignore_eos=true",
                     "rollout.max_model_len=2048", "rollout.max_num_seqs=512"]),
}


def median_after(values: list, drop: int, drop_last: int = 0) -> float | None:
    """The median of the steady steps: not the first `drop` (compilation, warm-up), nor the last `drop_last` (with
    rollouts overlapped, the last step has no next batch to generate beside its update, so it runs alone and
    short: W2's 2.26 s against 6.2-6.8 s on the H200)."""
    kept = [v for v in values[drop: len(values) - drop_last] if v is not None]
    return statistics.median(kept) if kept else None


def count_params(model_dir: str) -> int:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))
    return sum(p.numel() for p in model.parameters())  # tied embeddings once: the LM head's matmul


def device_name() -> str:
    return nvidia_smi("name") or "cpu"


def run_rlvr(args, name: str, w: dict, model: str, timeout_s: float, log: str | None = None) -> dict:
    out_dir = Path(args.workdir) / f"rlvr_{name}"
    shutil.rmtree(out_dir, ignore_errors=True)
    sets = [f"run.output_dir={out_dir}", f"model.path={model}", f"data.path={args.data}",
            f"run.steps={args.steps}",
            f"data.prompts_per_step={w['prompts']}", f"rollout.samples_per_prompt={w['G']}",
            f"rollout.max_new_tokens={w['max_new']}", *w["rlvr"], *args.rlvr_set]
    cmd = [sys.executable, "-m", "rlvr", "train", args.config, *[f"--set={s}" for s in sets]]
    print("+ " + " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    rc = run_streaming(cmd, timeout_s, log=log)
    metrics = out_dir / "metrics.jsonl"
    rows = [json.loads(l) for l in metrics.read_text().splitlines() if l.strip()] if metrics.is_file() else []
    if rows and args.metrics_dir:
        shutil.copy(metrics, Path(args.metrics_dir) / f"{name}_rlvr_metrics.jsonl")
    samples = w["prompts"] * w["G"]
    phases = sorted({k for r in rows for k in r if k.startswith("time/")})
    col = lambda k: [r.get(k) for r in rows]  # noqa: E731
    gen_tokens = [(r.get("response/length_mean") or 0) * samples for r in rows]
    return {"rc": rc, "wall_s": round(time.perf_counter() - t0, 1), "steps": len(rows), "step_s": col("time/step_s"),
            "rollout_s": col("time/rollout_s"), "learn_s": col("time/learn_s"), "generated_tokens": gen_tokens,
            "trained_tokens": col("learner/sequence_tokens"),
            "phases_median_s": {k: median_after(col(k), args.drop, args.drop_last) for k in phases}}


def run_trl(args, name: str, w: dict, model: str, timeout_s: float) -> dict:
    out = Path(args.workdir) / f"trl_{name}.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, str(REPO / "benchmarks/gpu/trl_grpo.py"), "--model", model, "--data", args.data,
           "--steps", str(args.steps), "--micro", str(w["trl_micro"]), "--prompts-per-step", str(w["prompts"]),
           "--G", str(w["G"]), "--max-new-tokens", str(w["max_new"]), "--out", str(out),
           "--workdir", str(Path(args.workdir) / "trl")]
    cmd += ["--template", "{prompt}"] * w["plain"]
    cmd += ["--plain-prompts"] * w["plain"] + ["--ignore-eos", "--vllm-max-model-len", "2048"] * w["ignore_eos"]
    print("+ " + " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    rc = run_streaming(cmd, timeout_s)
    res = json.loads(out.read_text()) if out.is_file() else {"step_s": [], "generation": []}
    gen = res.get("generation", [])[: len(res["step_s"])]
    rollout_s = [g["s"] for g in gen]
    return {"rc": rc, "wall_s": round(time.perf_counter() - t0, 1), "steps": len(res["step_s"]),
            "step_s": res["step_s"], "rollout_s": rollout_s,
            "learn_s": [s - g for s, g in zip(res["step_s"], rollout_s)],  # update + TRL's weight load into vLLM
            "generated_tokens": [g["completion_tokens"] for g in gen],
            "trained_tokens": [(g["prompt_tokens"] or 0) + (g["completion_tokens"] or 0) for g in gen],
            "micro": w["trl_micro"], "setup_s": res.get("setup_s")}


def summarize(side: dict, drop: int, drop_last: int, samples: int, params: int) -> dict:
    med = lambda k: median_after(side.get(k, []), drop, drop_last)  # noqa: E731
    step, rollout, learn = med("step_s"), med("rollout_s"), med("learn_s")
    gen, trained = med("generated_tokens"), med("trained_tokens")
    return {"s_per_step": step, "completions_per_s": samples / step if step else None,
            "rollout_tokens_per_s": gen / rollout if gen and rollout else None,
            "learner_tokens_per_s": trained / learn if trained and learn else None,
            "learner_mfu": 6 * params * trained / learn / PEAK_FLOPS if trained and learn else None,
            "rollout_s": rollout, "learn_s": learn, "generated_tokens": gen, "trained_tokens": trained}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="/root/models")
    ap.add_argument("--data", default=".gpudata/gsm8k/train.jsonl")
    ap.add_argument("--config", default="configs/gpu_smollm2_grpo_bench.yaml")
    ap.add_argument("--workloads", default="W1,W2,W3")
    ap.add_argument("--sides", default="trl,rlvr")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--drop", type=int, default=1)
    ap.add_argument("--drop-last", type=int, default=1, help="steady state: leave out the last steps (both sides)")
    ap.add_argument("--resummarize", nargs="*", default=None, metavar="OUT_JSON",
                    help="no run: summarize earlier --out files again (with this --drop/--drop-last) into --matrix")
    ap.add_argument("--side-timeout", type=float, default=280)
    ap.add_argument("--rlvr-set", action="append", default=[], help="extra rlvr override (CPU dry runs)")
    ap.add_argument("--workdir", default="/tmp/bench_matrix")
    ap.add_argument("--metrics-dir", default=None)
    ap.add_argument("--matrix", default=None, help="the JSON list of per-workload rows to merge into")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.resummarize is not None:
        return resummarize(args)
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    device = device_name()
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "device": device, "steps": args.steps,
              "drop": args.drop, "drop_last": args.drop_last, "workloads": {}}
    for name in args.workloads.split(","):
        w = WORKLOADS[name]
        model = f"{args.models}/{w['model']}"
        params = count_params(model)
        entry = report["workloads"][name] = {"spec": w, "params": params, "sides": {}, "summary": {}}
        for side in args.sides.split(","):
            res = (run_rlvr if side == "rlvr" else run_trl)(args, name, w, model, args.side_timeout)
            entry["sides"][side] = res
            entry["summary"][side] = summarize(res, args.drop, args.drop_last, w["prompts"] * w["G"], params)
            print(json.dumps({name: {side: entry["summary"][side]}}), flush=True)
            Path(args.out).write_text(json.dumps(report, indent=1))
        if args.matrix:
            merge_row(args.matrix, name, entry["summary"], device)
    return 0


def resummarize(args) -> int:
    """Recompute every side's summary of earlier reports (e.g. after changing what counts as steady state)."""
    for path in args.resummarize:
        report = json.loads(Path(path).read_text())
        report.update(drop=args.drop, drop_last=args.drop_last)
        for name, entry in report["workloads"].items():
            samples = entry["spec"]["prompts"] * entry["spec"]["G"]
            entry["summary"] = {side: summarize(res, args.drop, args.drop_last, samples, entry["params"])
                                for side, res in entry["sides"].items()}
            print(json.dumps({name: entry["summary"]}), flush=True)
            if args.matrix:
                merge_row(args.matrix, name, entry["summary"], report["device"])
        Path(path).write_text(json.dumps(report, indent=1))
    return 0


def merge_row(path: str, name: str, summary: dict, device: str) -> None:
    """Update the workload's row with the sides this call ran (a side may come from an earlier call)."""
    p = Path(path)
    rows = json.loads(p.read_text()) if p.is_file() else []
    row = next((x for x in rows if x["workload"] == name), None)
    if row is None:
        row = {"workload": name, "rlvr_s_per_step": None, "trl_s_per_step": None}
        rows.append(row)
    if "rlvr" in summary:
        row.update(rlvr_s_per_step=summary["rlvr"]["s_per_step"], learner_mfu=summary["rlvr"]["learner_mfu"])
    if "trl" in summary:
        row.update(trl_s_per_step=summary["trl"]["s_per_step"], trl_learner_mfu=summary["trl"]["learner_mfu"])
    r, t = row.get("rlvr_s_per_step"), row.get("trl_s_per_step")
    row.update(ratio=t / r if r and t else None, device=device)
    p.write_text(json.dumps(sorted(rows, key=lambda x: x["workload"]), indent=1))


if __name__ == "__main__":
    sys.exit(main())
