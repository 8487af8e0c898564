"""Rollout throughput: rlvr's vLLM engine in a Ray actor versus raw `vllm.LLM.generate`, one command, one GPU.

Same model, same prompts (random token ids, fixed seed), same sampling parameters (n, temperature, top_p,
max_tokens, ignore_eos so every completion has the same length), with and without per-token logprobs.

Both engines live at once on the GPU (each with `--gpu-mem` of it) and the timed calls are interleaved, round by
round: raw, raw with logprobs, rlvr, rlvr with logprobs. Only one engine works at a time, and drift of the
machine (clocks, other tenants) hits every side alike, which one side after the other in separate processes did
not give (raw's own calls varied 1.7-2.8 s there).

- raw: a default `vllm.LLM` in this process; plain params, and the same plus `logprobs=0` (the sampled token's).
- rlvr: `VLLMEngine` inside a Ray actor (as `RolloutGroup` runs it), timed from the driver: Ray's transfer of
  prompts and completions included; `SamplingParams(logprobs=False|True)`.

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


def summary(times: list[float], tokens: int) -> dict:
    med = statistics.median(times)
    return {"seconds": [round(t, 3) for t in times], "median_s": round(med, 3), "tokens": tokens,
            "tokens_per_s": round(tokens / med, 1)}


def run_interleaved(args) -> dict:
    import ray
    import vllm

    from rlvr.config import RolloutSection
    from rlvr.rollout.base import SamplingParams
    from rlvr.rollout.vllm_engine import VLLMEngine

    batch = prompts(args.prompts, args.prompt_len, args.vocab)
    out: dict = {}
    t = time.perf_counter()
    ray.init(num_cpus=4, num_gpus=1, include_dashboard=False, log_to_driver=False)
    cfg = RolloutSection(engine="vllm", gpu_memory_utilization=args.gpu_mem, temperature=args.temperature,
                         top_p=args.top_p, max_new_tokens=args.new_tokens)
    actor = ray.remote(num_gpus=0.5)(VLLMEngine).remote(args.model, cfg, 0, ignore_eos=True)
    ray.get(actor.__ray_ready__.remote(), timeout=900)
    out["rlvr_init_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    llm = vllm.LLM(model=args.model, dtype="bfloat16", seed=0, gpu_memory_utilization=args.gpu_mem)
    out["raw_init_s"] = round(time.perf_counter() - t, 1)

    base = dict(n=args.n, temperature=args.temperature, top_p=args.top_p, max_tokens=args.new_tokens, ignore_eos=True)
    raw_batch = [{"prompt_token_ids": p} for p in batch]

    def raw(extra):
        sp = vllm.SamplingParams(**base, **extra)
        return lambda: sum(len(o.token_ids) for r in llm.generate(raw_batch, sp, use_tqdm=False) for o in r.outputs)

    def rlvr(logprobs):
        sp = SamplingParams(n=args.n, temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.new_tokens,
                            logprobs=logprobs)
        return lambda: sum(len(c.token_ids) for c in ray.get(actor.generate.remote(batch, sp)))

    sides = {"raw": raw({}), "raw_logprobs": raw({"logprobs": 0}), "rlvr": rlvr(False), "rlvr_logprobs": rlvr(True)}
    times: dict[str, list[float]] = {k: [] for k in sides}
    tokens: dict[str, int] = {}
    for rnd in range(args.repeats + 1):  # round 0 warms every side up, untimed
        for name, fn in sides.items():
            t = time.perf_counter()
            tokens[name] = fn()
            if rnd:
                times[name].append(time.perf_counter() - t)
    for name in sides:
        out[name] = summary(times[name], tokens[name])
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
    ap.add_argument("--gpu-mem", type=float, default=0.4, help="each engine's share of the GPU")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--phase", choices=["all"], default=None, help="internal: run the measurement and print JSON")
    ap.add_argument("--phase-timeout", type=float, default=520)
    ap.add_argument("--out", default="rollout.json")
    args = ap.parse_args()

    if args.phase:
        emit(run_interleaved(args))
        return

    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "config": {k: v for k, v in vars(args).items() if k not in ("phase", "out")}}
    res = run_phase([sys.executable, __file__, *sys.argv[1:], "--phase", "all"], args.phase_timeout)
    report["result"] = res
    if "raw" in res and "rlvr" in res:
        tps = {k: res[k]["tokens_per_s"] for k in ("raw", "raw_logprobs", "rlvr", "rlvr_logprobs")}
        report["rlvr_over_raw"] = round(tps["rlvr"] / tps["raw"], 3)
        report["rlvr_logprobs_over_raw_logprobs"] = round(tps["rlvr_logprobs"] / tps["raw_logprobs"], 3)
        report["rlvr_logprobs_over_raw"] = round(tps["rlvr_logprobs"] / tps["raw"], 3)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
