"""Prompt datasets for RL: generated arithmetic tasks, GSM8K, or any JSONL; and a resumable sampler."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from rlvr.config import DataSection, FilterSpec
from rlvr.data.filters import apply_filters
from rlvr.data.records import open_source, take_keys
from rlvr.data.sampler import EpochSampler


@dataclass(frozen=True)
class Example:
    prompt: str
    reference: str


def copy_digits(n: int, seed: int) -> list[Example]:
    """`copy 7:` -> `7`. Learnable from a random model by RL alone: a digit is a lucky guess often enough."""
    rng = random.Random(seed)
    return [Example(f"copy {d}:", str(d)) for d in (rng.randrange(10) for _ in range(n))]


def add_digits(n: int, seed: int) -> list[Example]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.randrange(10), rng.randrange(10)
        out.append(Example(f"{a}+{b}=", str(a + b)))
    return out


def read_jsonl(path: str, prompt_key: str, answer_key: str, what: str = "data.path") -> list[Example]:
    rows = list(open_source(path, what).located())
    return [Example(r["prompt"], r["answer"]) for r in take_keys(rows, {"prompt": prompt_key, "answer": answer_key})]


def source_examples(cfg: DataSection, seed: int) -> list[Example]:
    if cfg.source == "copy_digits":
        return copy_digits(cfg.num_examples, seed)
    if cfg.source == "add_digits":
        return add_digits(cfg.num_examples, seed)
    if cfg.source == "word_problems":
        from rlvr.data.synthetic import word_problems

        return [Example(p.question, str(p.answer)) for p in word_problems(cfg.num_examples, seed)]
    # GSM8K's answer field keeps the worked solution; the reward extracts the gold after '####'
    return read_jsonl(cfg.path, cfg.prompt_key, cfg.answer_key)


def filter_examples(examples: list[Example], specs: Sequence[FilterSpec], what: str) -> list[Example]:
    records = [{"prompt": ex.prompt, "answer": ex.reference} for ex in examples]
    return [Example(r["prompt"], r["answer"]) for r in apply_filters(records, specs, what)]


def load_examples(cfg: DataSection, seed: int) -> list[Example]:
    return filter_examples(source_examples(cfg, seed), cfg.filters, "the GRPO prompts")


class PromptSampler(EpochSampler[Example]):
    """The resumable epoch sampler over a run's prompts. GRPO reports each sampled group's rewards to it
    (`observe`); this one ignores them, a refreshing one (rlvr.data.passrate_refresh) drops prompts by them."""

    def observe(self, prompt: str, rewards: Sequence[float]) -> None:
        pass

    def metrics(self) -> dict[str, float]:
        return {}

    def save(self, out_dir) -> None:
        """What the sampler learned, written into the run's output directory at the end (a refreshed map)."""


def render_prompt(tokenizer, cfg: DataSection, prompt: str) -> list[int]:
    text = cfg.prompt_template.format(prompt=prompt)
    if cfg.chat_template:
        return list(tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True, return_dict=False
        ))
    return tokenizer.encode(text, add_special_tokens=False)
