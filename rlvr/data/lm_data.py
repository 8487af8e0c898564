"""Documents for the causal-LM stages: plain text for pretraining, chats with assistant-only loss for SFT."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from rlvr.config import ConfigError, LMStageSection
from rlvr.data.chat import assistant_masked
from rlvr.data.packing import Document, PackedRow, pack


def _jsonl_rows(path: str | None) -> list[dict]:
    if not path or not Path(path).is_file():
        raise ConfigError(f"LM stage data path {path!r} does not exist (source: jsonl)")
    rows = []
    with Path(path).open() as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    raise ConfigError(f"{path}:{lineno}: not valid JSON") from None
    return rows


def pretrain_texts(cfg: LMStageSection, seed: int) -> list[str]:
    if cfg.source == "arithmetic":
        from rlvr.data.synthetic import arithmetic_documents

        return arithmetic_documents(cfg.num_examples, seed)
    if cfg.source == "word_problems":
        from rlvr.data.synthetic import word_problems

        return [f"{p.question}\n{p.solution}" for p in word_problems(cfg.num_examples, seed)]
    rows = _jsonl_rows(cfg.path)
    if any(cfg.text_key not in r for r in rows):
        raise ConfigError(f"{cfg.path}: every line needs the key {cfg.text_key!r}")
    return [str(r[cfg.text_key]) for r in rows]


def sft_conversations(cfg: LMStageSection, seed: int) -> list[list[dict]]:
    if cfg.source == "word_problems":
        from rlvr.data.synthetic import word_problems

        return [[{"role": "user", "content": p.question}, {"role": "assistant", "content": p.solution}]
                for p in word_problems(cfg.num_examples, seed)]
    if cfg.source != "jsonl":
        raise ConfigError(f"sft.source {cfg.source!r}: SFT needs conversations (word_problems or jsonl)")
    out = []
    for i, r in enumerate(_jsonl_rows(cfg.path), 1):
        if cfg.messages_key in r:
            out.append(list(r[cfg.messages_key]))
        elif cfg.prompt_key in r and cfg.answer_key in r:
            out.append([{"role": "user", "content": str(r[cfg.prompt_key])},
                        {"role": "assistant", "content": str(r[cfg.answer_key])}])
        else:
            raise ConfigError(f"{cfg.path}:{i}: needs {cfg.messages_key!r} or {cfg.prompt_key!r}+{cfg.answer_key!r}")
    return out


def build_rows(kind: Literal["pretrain", "sft"], cfg: LMStageSection, tokenizer, seed: int) -> list[PackedRow]:
    """The stage's whole dataset as packed rows (small enough for the driver's memory in the stages we run)."""
    if kind == "pretrain":
        eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        docs = []
        for text in pretrain_texts(cfg, seed):
            ids = tokenizer.encode(text, add_special_tokens=False) + eos
            docs.append(Document(ids, [True] * len(ids)))
    else:
        docs = [assistant_masked(tokenizer, conv) for conv in sft_conversations(cfg, seed)]
    if not docs:
        raise ConfigError(f"the {kind} dataset is empty")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if cfg.packing:
        return pack(docs, cfg.seq_len, pad, split_documents=kind == "pretrain")
    return [row for d in docs for row in pack([d], cfg.seq_len, pad, split_documents=False)]
