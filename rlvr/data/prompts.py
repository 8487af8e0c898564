"""Prompt datasets for RL: generated arithmetic tasks, GSM8K, or any JSONL; and a resumable sampler."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from rlvr.config import ConfigError, DataSection


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


def read_jsonl(path: str, prompt_key: str, answer_key: str) -> list[Example]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"data.path {path!r} does not exist")
    examples = []
    with p.open() as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if prompt_key not in row or answer_key not in row:
                raise ConfigError(f"{path}:{lineno}: needs keys {prompt_key!r} and {answer_key!r}")
            examples.append(Example(str(row[prompt_key]), str(row[answer_key])))
    return examples


def load_examples(cfg: DataSection, seed: int) -> list[Example]:
    if cfg.source == "copy_digits":
        return copy_digits(cfg.num_examples, seed)
    if cfg.source == "add_digits":
        return add_digits(cfg.num_examples, seed)
    if cfg.source == "word_problems":
        from rlvr.data.synthetic import word_problems

        return [Example(p.question, str(p.answer)) for p in word_problems(cfg.num_examples, seed)]
    # GSM8K's answer field keeps the worked solution; the reward extracts the gold after '####'
    return read_jsonl(cfg.path, cfg.prompt_key, cfg.answer_key)


class PromptSampler:
    """Shuffled epochs of examples; `state_dict` restores the exact position (epoch and offset) on resume."""

    def __init__(self, examples: list[Example], seed: int):
        if not examples:
            raise ConfigError("the dataset has no examples")
        self.examples, self.seed = examples, seed
        self.epoch, self.offset = 0, 0
        self._order = self._shuffled(0)

    def _shuffled(self, epoch: int) -> list[int]:
        order = list(range(len(self.examples)))
        random.Random(self.seed * 100_003 + epoch).shuffle(order)
        return order

    def next_batch(self, k: int) -> list[Example]:
        batch = []
        while len(batch) < k:
            if self.offset == len(self._order):
                self.epoch, self.offset = self.epoch + 1, 0
                self._order = self._shuffled(self.epoch)
            batch.append(self.examples[self._order[self.offset]])
            self.offset += 1
        return batch

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "offset": self.offset}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.offset = state["epoch"], state["offset"]
        self._order = self._shuffled(self.epoch)


def render_prompt(tokenizer, cfg: DataSection, prompt: str) -> list[int]:
    text = cfg.prompt_template.format(prompt=prompt)
    if cfg.chat_template:
        return list(tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True, return_dict=False
        ))
    return tokenizer.encode(text, add_special_tokens=False)
