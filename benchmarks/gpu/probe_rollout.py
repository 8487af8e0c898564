"""Where the GRPO step's rollout time goes (one GPU): the GRPO benchmark's exact rollout, timed under variants.

The workload is `configs/gpu_smollm2_grpo_bench.yaml`'s: 8 GSM8K train prompts (chat template) x G = 8, up to 256
new tokens, T = 1.0, through rlvr's `VLLMEngine` (no Ray: the engine is what is measured). Variants:

- `plain` / `logprobs`: the step's rollout without and with the sampled tokens' logprobs (overlap mode asks for them);
- `steps B`: B completions forced to 256 tokens (`ignore_eos`): seconds per decoding step against batch size, which
  says whether splitting a step's completions across several engines could shorten it (that split itself is
  measured through `rlvr train`: bench_grpo_vs_trl.py's overlap_micro64_x2/_x4 variants).

    python3 benchmarks/gpu/probe_rollout.py --model /root/models/smollm2 --out probe.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from rlvr.config import load_config
from rlvr.data.prompts import PromptSampler, load_examples, render_prompt
from rlvr.rollout.base import SamplingParams


def step_prompts(model: str, steps: int):
    """The prompt ids of `steps` GRPO steps, as the benchmark config samples them, and that config."""
    from rlvr.model_io import load_tokenizer

    cfg = load_config(REPO / "configs/gpu_smollm2_grpo_bench.yaml", [f"model.path={model}"])
    tok = load_tokenizer(model)
    sampler = PromptSampler(load_examples(cfg.data, cfg.run.seed), cfg.run.seed)
    return [[render_prompt(tok, cfg.data, ex.prompt) for ex in sampler.next_batch(cfg.data.prompts_per_step)]
            for _ in range(steps)], cfg


def engine(model: str, cfg, util: float, ignore_eos: bool = False):
    from rlvr.rollout.vllm_engine import VLLMEngine

    rcfg = cfg.rollout.model_copy(update={"gpu_memory_utilization": util})
    return VLLMEngine(model, rcfg, seed=0, ignore_eos=ignore_eos)


def timed_generate(eng, prompts, params) -> tuple[float, list]:
    t0 = time.perf_counter()
    out = eng.generate(prompts, params)
    return time.perf_counter() - t0, out


def params_for(cfg, n: int, logprobs: bool, max_new: int | None = None) -> SamplingParams:
    r = cfg.rollout
    return SamplingParams(n=n, temperature=r.temperature, top_p=r.top_p, max_new_tokens=max_new or r.max_new_tokens,
                          logprobs=logprobs)


def in_process(args, results: dict) -> None:
    steps, cfg = step_prompts(args.model, args.repeats + 1)
    G = cfg.rollout.samples_per_prompt
    t0 = time.perf_counter()
    eng = engine(args.model, cfg, args.util)
    results["engine_start_s"] = round(time.perf_counter() - t0, 1)
    for name, lp in (("plain", False), ("logprobs", True)):
        rows = []
        for i, prompts in enumerate(steps):
            s, out = timed_generate(eng, prompts, params_for(cfg, G, lp))
            lengths = [len(c.token_ids) for c in out]
            if i:  # the first is a warm-up
                rows.append({"s": round(s, 4), "completions": len(out), "max_len": max(lengths),
                             "mean_len": round(statistics.mean(lengths), 1),
                             "s_per_step_of_longest": round(s / max(lengths), 6)})
        results[name] = {"median_s": statistics.median(r["s"] for r in rows), "rows": rows}
        print(name, json.dumps(results[name]), flush=True)
    del eng
    # fixed-length decoding: seconds per step against the number of sequences decoded together
    import gc

    import torch

    gc.collect()
    torch.cuda.empty_cache()
    eng = engine(args.model, cfg, args.util, ignore_eos=True)
    prompts = steps[0]
    results["steps"] = {}
    for batch in (8, 16, 32, 64, 128):
        reps = []
        for i in range(3):
            n_prompts = max(1, batch // G)
            ps = [prompts[j % len(prompts)] for j in range(n_prompts)]
            s, out = timed_generate(eng, ps, params_for(cfg, batch // n_prompts, False, 256))
            reps.append(s / 256)
        results["steps"][str(batch)] = {"ms_per_step": round(1000 * statistics.median(reps[1:]), 3)}
        print("steps", batch, results["steps"][str(batch)], flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--util", type=float, default=0.3)
    ap.add_argument("--phase-timeout", type=float, default=400)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    results: dict = {"args": vars(args), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    p = mp.get_context("spawn").Process(target=_in_process_child, args=(args,))
    p.start()
    p.join(timeout=args.phase_timeout)
    if p.is_alive():
        p.kill()
        results["in_process"] = "timed out"
    else:
        results["in_process"] = json.loads(Path(args.out + ".inproc").read_text()) if p.exitcode == 0 else \
            f"exit {p.exitcode}"
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


def _in_process_child(args) -> None:
    res: dict = {}
    try:
        in_process(args, res)
    finally:
        Path(args.out + ".inproc").write_text(json.dumps(res))
    os._exit(0)  # vLLM's engine core process would otherwise keep the child alive


if __name__ == "__main__":
    main()
