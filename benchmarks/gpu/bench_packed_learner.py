"""The learner's update alone on one GPU, without DeepSpeed, Ray or vLLM (so it runs on the bare GPU image):
a SmolLM2-135M-shaped model (random weights, bf16) trained on one W2-shaped batch (512 rollouts, prompts of
90-200 tokens, completions of 16-512) with the GRPO loss, two ways:

- padded: micro-batches of `--micro` rollouts, full-vocabulary logits (the learner before issue 20);
- packed: micro-batches of at most `--max-tokens` tokens, flash-attention varlen, log-probs in `--chunk`-row
  chunks (`learner.max_tokens_per_micro_batch`, `learner.logprob_chunk_tokens`).

One update = forward + backward of every micro-batch + one fused AdamW step. Prints one JSON line per path:
median seconds per update over `--repeats` (after one warm-up), tokens/s, and model-FLOPs utilisation =
6 x parameters x tokens / seconds / 989e12 (H100 SXM bf16 dense peak), the formula of bench_grpo_matrix.py.

    python benchmarks/gpu/bench_packed_learner.py --out learner_packed.json
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from rlvr.algo import grpo
from rlvr.learner.batch import collate
from rlvr.learner.packed_rollouts import _has_varlen, packed_logprobs, packed_micro_batches, use_varlen_attention
from rlvr.rollout.base import Rollout

PEAK_FLOPS = 989e12
SMOLLM2_135M = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                    num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048,
                    tie_word_embeddings=True, rope_theta=100000.0)


def w2_batch(n: int, seed: int = 0) -> list[Rollout]:
    rng = random.Random(seed)
    return [Rollout([rng.randrange(49152) for _ in range(rng.randint(90, 200))],
                    [rng.randrange(49152) for _ in range(rng.randint(16, 512))], [], advantage=rng.uniform(-1, 1))
            for _ in range(n)]


def padded_update(model, batch, micro: int, norm: float, cfg) -> None:
    for s in range(0, len(batch), micro):
        mb = collate(batch[s: s + micro], 0).to("cuda")
        logits = model(input_ids=mb.input_ids_BL, attention_mask=mb.attention_mask_BL, use_cache=False).logits
        logp = grpo.token_logprobs(logits[:, :-1], mb.input_ids_BL[:, 1:])
        grpo.grpo_loss(logp, logp.detach(), mb.advantages_B, mb.completion_mask_BT, cfg, norm)[0].backward()


def packed_update(model, batch, max_tokens: int, chunk: int, norm: float, cfg) -> None:
    for p in packed_micro_batches(batch, max_tokens):
        p = p.to("cuda")
        lp, _ = packed_logprobs(model, model, p, 1.0, chunk=chunk)
        loss, _ = grpo.grpo_loss(p.rows(lp), p.rows(lp.detach()), p.adv_S, p.rows(torch.ones_like(lp)).bool(),
                                 cfg, norm)
        loss.backward()


def timed(step, opt, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats + 1):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times[1:]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rollouts", type=int, default=512)
    ap.add_argument("--micro", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=16384)
    ap.add_argument("--chunk", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--paths", default="packed,padded")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**SMOLLM2_135M)).to("cuda", torch.bfloat16)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6, fused=True)
    batch = w2_batch(args.rollouts)
    tokens = sum(len(r.prompt_ids) + len(r.completion_ids) for r in batch)
    norm = float(sum(len(r.completion_ids) for r in batch))
    cfg = grpo.LossConfig()
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "varlen": _has_varlen(),
              "params": params, "rollouts": len(batch), "tokens": tokens, "paths": {}}
    for path in args.paths.split(","):
        if path == "packed":
            use_varlen_attention(model)
            step = lambda: packed_update(model, batch, args.max_tokens, args.chunk, norm, cfg)  # noqa: E731
            knobs = {"max_tokens": args.max_tokens, "chunk": args.chunk}
        else:
            model.set_attn_implementation("sdpa")
            step = lambda: padded_update(model, batch, args.micro, norm, cfg)  # noqa: E731
            knobs = {"micro": args.micro}
        torch.cuda.reset_peak_memory_stats()
        times = timed(step, opt, args.repeats)
        s = statistics.median(times)
        report["paths"][path] = {**knobs, "s_per_update": round(s, 4), "all_s": [round(t, 4) for t in times],
                                 "tokens_per_s": round(tokens / s), "mfu": round(6 * params * tokens / s / PEAK_FLOPS, 4),
                                 "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)}
        print(json.dumps({path: report["paths"][path]}), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
