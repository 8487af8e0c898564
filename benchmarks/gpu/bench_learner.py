"""Learner update time alone (no vLLM, no Ray): rlvr's `Learner.train_grpo` on one GPU, for a few DeepSpeed ZeRO
stages and micro-batch sizes, on a batch shaped like the GRPO benchmark's (64 completions, prompts ~90-140 tokens,
completions 60-256 tokens, SmolLM2-135M-Instruct, bf16). Each variant runs in its own process (a fresh process
group); 2 warm-up updates, then `--steps` timed ones (median). One variant is also profiled (torch.profiler).

    python benchmarks/gpu/bench_learner.py --model /root/models/smollm2 --out learner.json
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_grpo_matrix import count_params  # noqa: E402
from phase import emit, run_phase  # noqa: E402

PACKED16K = ["learner.zero_stage=2", "learner.max_tokens_per_micro_batch=16384", "learner.logprob_chunk_tokens=2048",
             "learner.fused_adamw=true"]
VARIANTS = {  # name: config overrides
    "zero2_micro16": ["learner.zero_stage=2", "learner.micro_batch_size=16"],
    "zero0_micro16": ["learner.zero_stage=0", "learner.micro_batch_size=16"],
    "zero2_micro64": ["learner.zero_stage=2", "learner.micro_batch_size=64"],
    "zero0_micro64": ["learner.zero_stage=0", "learner.micro_batch_size=64"],
    # issue 20's W3 learner shape (--shape w3): packed by a token budget, chunked logprobs, fused AdamW
    "packed16k": PACKED16K,
    "padded_micro8": ["learner.zero_stage=2", "learner.micro_batch_size=8"],
    # issue 20's "torch.compile of the model (option)": packed16k, each decoder layer compiled (W3, H100: 11.16 s)
    "packed16k_compiled": [*PACKED16K, "learner.compile=true"],
    # issue 16 (docs/lora.md): the same update with LoRA adapters only, and on a 4-bit NF4 base (needs bitsandbytes,
    # which the GPU image lacks: carry a wheel). Not in the default --variants.
    "lora_r16_micro16": ["learner.zero_stage=2", "learner.micro_batch_size=16", "learner.lora.r=16"],
    "qlora_r16_micro16": ["learner.zero_stage=2", "learner.micro_batch_size=16", "learner.lora.r=16",
                          "learner.lora.quantize=nf4"],
}
SHAPES = {  # rollouts per update, prompts per group, prompt and completion length ranges
    "w1": dict(n=64, G=8, prompt=(90, 140), completion=(60, 256)),
    "w3": dict(n=512, G=8, prompt=(64, 128), completion=(1024, 1024)),
}


def synthetic_rollouts(n: int, vocab: int, seed: int = 0, prompt_len=(90, 140), completion_len=(60, 256)):
    from rlvr.rollout.base import Rollout

    rng = random.Random(seed)
    out = []
    for i in range(n):
        prompt = [rng.randrange(min(100, vocab - 1), vocab) for _ in range(rng.randint(*prompt_len))]
        completion = [rng.randrange(min(100, vocab - 1), vocab) for _ in range(rng.randint(*completion_len))]
        out.append(Rollout(prompt, completion, [-1.0] * len(completion), 0.0, rng.gauss(0, 1), group=i // 8))
    return out


def run_variant(args) -> dict:
    import torch

    from rlvr.config import load_config

    shape = SHAPES[args.shape]
    from rlvr.learner.deepspeed_setup import free_port
    from rlvr.learner.learner import Learner

    cfg = load_config(None, [f"model.path={args.model}", "model.dtype=bfloat16", "learner.num_actors=1",
                             "learner.precision=bf16", "learner.lr=1e-6",
                             f"rollout.samples_per_prompt={shape['G']}", f"data.prompts_per_step={shape['n'] // shape['G']}",
                             *VARIANTS[args.variant]])
    learner = Learner(cfg, args.model, 0, 1)
    t = time.perf_counter()
    learner.setup("127.0.0.1", free_port(), cfg.grad_accum_steps, 100)
    setup_s = time.perf_counter() - t
    vocab = learner.engine.module.config.vocab_size
    batches = [synthetic_rollouts(shape["n"], vocab, seed, shape["prompt"], shape["completion"])
               for seed in range(args.steps + args.warmup)]
    cuda = torch.cuda.is_available()  # CPU: a dry run of the script itself
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    times = []
    for i, batch in enumerate(batches):
        sync()
        t = time.perf_counter()
        learner.train_grpo(batch)
        sync()
        print(f"update {i}: {time.perf_counter() - t:.3f} s", file=sys.stderr, flush=True)
        if i >= args.warmup:
            times.append(time.perf_counter() - t)
    out = {"variant": args.variant, "overrides": VARIANTS[args.variant], "setup_s": round(setup_s, 1),
           "step_s": [round(x, 4) for x in times], "median_s": round(statistics.median(times), 4),
           "tokens_per_update": sum(len(r.prompt_ids) + len(r.completion_ids) for r in batches[0]),
           "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None}
    # the model's parameters from its config: the module's own count would see QLoRA's packed 4-bit storage (half
    # the base weights' count) and LoRA's adapters
    params = count_params(args.model)
    # model FLOPs utilisation against the H100's bf16 dense peak (989 TFLOP/s): 6 x parameters x tokens (with LoRA
    # no weight gradients are computed, so the same formula overstates the work done by about a third)
    out.update(params=params, mfu=round(6 * params * out["tokens_per_update"] / out["median_s"] / 989e12, 4))
    if args.profile:
        emit(out)  # the timings survive a profile that runs out of time
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU] + [ProfilerActivity.CUDA] * cuda) as prof:
            learner.train_grpo(batches[0])
            sync()
        table = prof.key_averages().table(sort_by="cpu_time_total", row_limit=25, max_name_column_width=60)
        print(table, flush=True)
        out["profile_top_cpu"] = table
        if cuda:
            out["profile_top_cuda"] = prof.key_averages().table(sort_by="cuda_time_total", row_limit=15,
                                                                max_name_column_width=60)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="/root/models/smollm2")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--variants", default=",".join(k for k in VARIANTS if "lora" not in k))
    ap.add_argument("--profile-variant", default="zero2_micro16")
    ap.add_argument("--shape", choices=list(SHAPES), default="w1")
    ap.add_argument("--warmup", type=int, default=2, help="untimed updates first")
    ap.add_argument("--variant", default=None, help="internal: run one variant and print JSON")
    ap.add_argument("--profile", action="store_true", help="internal")
    ap.add_argument("--phase-timeout", type=float, default=150)
    ap.add_argument("--out", default="learner.json")
    args = ap.parse_args()
    if args.variant:
        emit(run_variant(args))
        return
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "model": args.model, "shape": args.shape,
              "variants": {}}
    for name in args.variants.split(","):
        cmd = [sys.executable, __file__, "--model", args.model, "--steps", str(args.steps), "--variant", name,
               "--shape", args.shape, "--warmup", str(args.warmup)]
        if name == args.profile_variant:
            cmd.append("--profile")
        report["variants"][name] = run_phase(cmd, args.phase_timeout)
        print(json.dumps({k: v for k, v in report["variants"][name].items() if not k.startswith("profile")}),
              flush=True)
        Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
