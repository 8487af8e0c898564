"""Do two bf16 forward passes of the same weights give the same token logprobs on a GPU?

The learner's update runs with grad in train mode; the old-policy logprobs it recomputes (overlap_old_logprobs=
learner, or mini_batches > 1) come from a no-grad pass in eval mode. On an H100 their |log ratio| at step 0 was
0.041, not 0 (docs/benchmarks.md, GRPO run 5). This compares the passes pairwise on a SmolLM2-shaped model (random
weights with a wide init, so the distributions are peaked like a trained model's), one factor at a time, with the
batch shaped as the learner's (padded rows, attention mask, the LM head on the completion window only).
Needs only torch and transformers.

    python3 benchmarks/gpu/probe_bf16_ratio.py --out bf16_ratio.json
"""

from __future__ import annotations

import argparse
import contextlib
import json

import torch


def model(dtype, device: str, layers: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=layers, num_attention_heads=9,
                      num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True, initializer_range=0.08,
                      max_position_embeddings=2048)
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).to(device, dtype)


def batch(device: str, B: int = 64, prompt: int = 110, completion: int = 256):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 49152, (B, prompt + completion), generator=g)
    mask = torch.ones_like(ids)
    lengths = torch.randint(20, completion + 1, (B,), generator=g)
    for b, n in enumerate(lengths.tolist()):  # completions end at different lengths: right padding
        mask[b, prompt + n:] = 0
    return ids.to(device), mask.to(device), prompt


def logprobs(m, ids, mask, start, grad: bool, train: bool, sdpa=None):
    m.train(train)
    ctx = torch.enable_grad() if grad else torch.no_grad()
    kernel = torch.nn.attention.sdpa_kernel(sdpa) if sdpa is not None else contextlib.nullcontext()
    with ctx, kernel:
        out = m(input_ids=ids, attention_mask=mask, use_cache=False, logits_to_keep=ids.shape[1] - start)
        logits = out.logits[:, :-1].float()
        lp = torch.log_softmax(logits, -1).gather(-1, ids[:, start + 1:].unsqueeze(-1)).squeeze(-1)
    return lp.detach(), mask[:, start + 1:].bool()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--layers", type=int, default=30)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    m = model(torch.bfloat16, args.device, args.layers)
    m.requires_grad_(True)
    ids, mask, start = batch(args.device, args.batch)
    from torch.nn.attention import SDPBackend

    passes = {
        "grad_train": {"grad": True, "train": True},
        "grad_train_again": {"grad": True, "train": True},
        "nograd_eval": {"grad": False, "train": False},
        "nograd_train": {"grad": False, "train": True},
        "grad_eval": {"grad": True, "train": False},
        "grad_train_math": {"grad": True, "train": True, "sdpa": SDPBackend.MATH},
        "nograd_eval_math": {"grad": False, "train": False, "sdpa": SDPBackend.MATH},
        "grad_train_efficient": {"grad": True, "train": True, "sdpa": SDPBackend.EFFICIENT_ATTENTION},
        "nograd_eval_efficient": {"grad": False, "train": False, "sdpa": SDPBackend.EFFICIENT_ATTENTION},
    }
    got = {}
    for name, kw in passes.items():
        try:
            got[name] = logprobs(m, ids, mask, start, **kw)
        except RuntimeError as exc:  # a backend that refuses this input
            got[name] = str(exc)[:200]
    ref_lp, valid = got["grad_train"]
    result = {"device": torch.cuda.get_device_name() if args.device == "cuda" else args.device, "torch": torch.__version__,
              "mean_abs_logprob": round(float(ref_lp[valid].abs().mean()), 4), "vs_grad_train": {}}
    for name, value in got.items():
        if isinstance(value, str):
            result["vs_grad_train"][name] = value
            continue
        d = (value[0] - ref_lp)[valid].abs()
        result["vs_grad_train"][name] = {"mean_abs": float(d.mean()), "max_abs": float(d.max())}
    pairs = [("nograd_eval_math", "grad_train_math"), ("nograd_eval_efficient", "grad_train_efficient")]
    for a, b in pairs:
        if not isinstance(got[a], str) and not isinstance(got[b], str):
            d = (got[a][0] - got[b][0])[valid].abs()
            result[f"{a}_vs_{b}"] = {"mean_abs": float(d.mean()), "max_abs": float(d.max())}
    print(json.dumps(result, indent=1))
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
