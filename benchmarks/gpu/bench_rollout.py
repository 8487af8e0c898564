"""Rollout throughput: rlvr's vLLM engine in a Ray actor versus raw `vllm.LLM.generate`, one command, one GPU.

Same model, same prompts (random token ids, fixed seed), same sampling parameters (n, temperature, top_p,
max_tokens, ignore_eos so every completion has the same length). Each side runs in its own subprocess, one after
the other, so each gets the whole GPU and frees it completely when done.

- raw: a default `vllm.LLM`, timed twice per round: plain params, and the same params plus `logprobs=0` (RL needs
  the sampled token's logprob, so that is the like-for-like ceiling).
- rlvr: `VLLMEngine` inside a Ray actor (as `RolloutGroup` runs it), timed from the driver: Ray's transfer of
  prompts and completions included. Falls back to the engine in-process if Ray cannot start, and says so.

    python benchmarks/gpu/bench_rollout.py --model /root/models/qwen05b --out results/rollout.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from phase import emit, run_phase  # noqa: E402


def prompts(n: int, length: int, vocab: int, seed: int = 0) -> list[list[int]]:
    import random

    rng = random.Random(seed)
    return [[rng.randrange(1, vocab - 1) for _ in range(length)] for _ in range(n)]


def timed(fn, repeats: int) -> tuple[list[float], int]:
    """Seconds per call (after one untimed warm-up call) and generated tokens per call."""
    tokens = fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        tokens = fn()
        times.append(time.perf_counter() - t)
    return times, tokens


def summary(times: list[float], tokens: int) -> dict:
    med = statistics.median(times)
    return {"seconds": [round(t, 3) for t in times], "median_s": round(med, 3), "tokens": tokens,
            "tokens_per_s": round(tokens / med, 1)}


def run_raw(args) -> dict:
    import vllm

    t = time.perf_counter()
    llm = vllm.LLM(model=args.model, dtype="bfloat16", seed=0, gpu_memory_utilization=args.gpu_mem)
    init_s = time.perf_counter() - t
    batch = [{"prompt_token_ids": p} for p in prompts(args.prompts, args.prompt_len, args.vocab)]
    base = dict(n=args.n, temperature=args.temperature, top_p=args.top_p, max_tokens=args.new_tokens, ignore_eos=True)
    out = {"init_s": round(init_s, 1)}
    for label, extra in (("raw", {}), ("raw_logprobs", {"logprobs": 0})):
        sp = vllm.SamplingParams(**base, **extra)

        def gen(sp=sp):
            res = llm.generate(batch, sp, use_tqdm=False)
            return sum(len(o.token_ids) for r in res for o in r.outputs)

        out[label] = summary(*timed(gen, args.repeats))
    return out


def run_rlvr(args) -> dict:
    from rlvr.config import RolloutSection
    from rlvr.rollout.base import SamplingParams
    from rlvr.rollout.vllm_engine import VLLMEngine

    cfg = RolloutSection(engine="vllm", gpu_memory_utilization=args.gpu_mem, temperature=args.temperature,
                         top_p=args.top_p, max_new_tokens=args.new_tokens)
    params = SamplingParams(n=args.n, temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.new_tokens)
    batch = prompts(args.prompts, args.prompt_len, args.vocab)
    out: dict = {}
    t = time.perf_counter()
    try:
        import ray

        ray.init(num_cpus=4, num_gpus=1, include_dashboard=False, log_to_driver=False)
        actor = ray.remote(num_gpus=1)(VLLMEngine).remote(args.model, cfg, 0, ignore_eos=True)
        ray.get(actor.__ray_ready__.remote(), timeout=900)
        out["where"] = "ray actor"

        def gen():
            return sum(len(c.token_ids) for c in ray.get(actor.generate.remote(batch, params)))
    except Exception as exc:  # noqa: BLE001 - a benchmark reports why Ray failed and measures in-process instead
        out["ray_error"] = f"{type(exc).__name__}: {exc}"[:500]
        out["where"] = "in-process (Ray failed)"
        engine = VLLMEngine(args.model, cfg, 0, ignore_eos=True)

        def gen():
            return sum(len(c.token_ids) for c in engine.generate(batch, params))
    out["init_s"] = round(time.perf_counter() - t, 1)
    out["rlvr"] = summary(*timed(gen, args.repeats))
    if out["where"] == "ray actor":
        ray.shutdown()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="/root/models/qwen05b")
    ap.add_argument("--vocab", type=int, default=151936)
    ap.add_argument("--prompts", type=int, default=256)
    ap.add_argument("--prompt-len", type=int, default=256)
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--n", type=int, default=1)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--top-p", type=float, default=1.0)
    ap.add_argument("--gpu-mem", type=float, default=0.85)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--phase", choices=["raw", "rlvr"], default=None, help="internal: run one side and print JSON")
    ap.add_argument("--phase-timeout", type=float, default=420)
    ap.add_argument("--out", default="rollout.json")
    args = ap.parse_args()

    if args.phase:
        emit(run_raw(args) if args.phase == "raw" else run_rlvr(args))
        return

    report = {"config": {k: v for k, v in vars(args).items() if k not in ("phase", "out")}}
    for phase in ("raw", "rlvr"):
        cmd = [sys.executable, __file__, *sys.argv[1:], "--phase", phase]
        report[phase] = run_phase(cmd, args.phase_timeout)
    raw, rl = report["raw"], report["rlvr"]
    if "raw" in raw and "rlvr" in rl:
        report["rlvr_over_raw"] = round(rl["rlvr"]["tokens_per_s"] / raw["raw"]["tokens_per_s"], 3)
        report["rlvr_over_raw_logprobs"] = round(rl["rlvr"]["tokens_per_s"] / raw["raw_logprobs"]["tokens_per_s"], 3)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
