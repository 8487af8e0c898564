"""Documents for the causal-LM stages: plain text for pretraining, chats with assistant-only loss for SFT."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from rlvr.config import ConfigError, FilterSpec, LMStageSection
from rlvr.data.chat import assistant_masked
from rlvr.data.filters import apply_filters
from rlvr.data.packing import Document, PackedRow, pack
from rlvr.data.records import Record, open_source, take_keys


def _file_rows(path: str | None, what: str) -> list[tuple[str, dict]]:
    return list(open_source(path, f"{what}.path").located())


def pretrain_records(cfg: LMStageSection, seed: int) -> list[Record]:
    if cfg.source == "arithmetic":
        from rlvr.data.synthetic import arithmetic_documents

        return [{"text": t} for t in arithmetic_documents(cfg.num_examples, seed)]
    if cfg.source == "word_problems":
        from rlvr.data.synthetic import word_problems

        return [{"text": f"{p.question}\n{p.solution}"} for p in word_problems(cfg.num_examples, seed)]
    return take_keys(_file_rows(cfg.path, "pretrain"), {"text": cfg.text_key})


def sft_records(cfg: LMStageSection, seed: int) -> list[Record]:
    if cfg.source == "word_problems":
        from rlvr.data.synthetic import word_problems

        return [{"messages": [{"role": "user", "content": p.question}, {"role": "assistant", "content": p.solution}]}
                for p in word_problems(cfg.num_examples, seed)]
    if cfg.source != "jsonl":
        raise ConfigError(f"sft.source {cfg.source!r}: SFT needs conversations (word_problems or jsonl)")
    out = []
    for where, r in _file_rows(cfg.path, "sft"):
        if cfg.messages_key in r:
            out.append({"messages": list(r[cfg.messages_key])})
        elif cfg.prompt_key in r and cfg.answer_key in r:
            out.append({"messages": [{"role": "user", "content": str(r[cfg.prompt_key])},
                                     {"role": "assistant", "content": str(r[cfg.answer_key])}]})
        else:
            raise ConfigError(f"{where}: needs {cfg.messages_key!r} or {cfg.prompt_key!r}+{cfg.answer_key!r}")
    return out


def pretrain_texts(cfg: LMStageSection, seed: int, filters: Sequence[FilterSpec] = ()) -> list[str]:
    return [r["text"] for r in apply_filters(pretrain_records(cfg, seed), filters, "the pretraining documents")]


def sft_conversations(cfg: LMStageSection, seed: int, filters: Sequence[FilterSpec] = ()) -> list[list[dict]]:
    return [r["messages"] for r in apply_filters(sft_records(cfg, seed), filters, "the SFT chats")]


def build_rows(kind: Literal["pretrain", "sft"], cfg: LMStageSection, tokenizer, seed: int,
               filters: Sequence[FilterSpec] = ()) -> list[PackedRow]:
    """The stage's whole dataset as packed rows (small enough for the driver's memory in the stages we run)."""
    if kind == "pretrain":
        eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        docs = []
        for text in pretrain_texts(cfg, seed, filters):
            ids = tokenizer.encode(text, add_special_tokens=False) + eos
            docs.append(Document(ids, [True] * len(ids)))
    else:
        docs = [assistant_masked(tokenizer, conv) for conv in sft_conversations(cfg, seed, filters)]
    if not docs:
        raise ConfigError(f"the {kind} dataset is empty")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if cfg.packing:
        return pack(docs, cfg.seq_len, pad, split_documents=kind == "pretrain")
    return [row for d in docs for row in pack([d], cfg.seq_len, pad, split_documents=False)]
