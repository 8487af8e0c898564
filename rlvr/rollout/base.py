"""What every rollout engine offers the controller: batched sampling with per-token logprobs, and weight loading.

Shaped after vLLM's `LLM.generate` (a batch of token-id prompts, one set of sampling params, n samples each), so the
transformers engine and the vLLM engine are interchangeable behind the rollout actors.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Protocol

import torch


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1
    """Samples per prompt (G)."""
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 32
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logprobs: bool = True
    """Return each sampled token's logprob. Engines may skip computing them when False (vLLM does: it saves
    per-token output handling); the controller asks only when the learner uses them (rollout.overlap)."""


@dataclass
class Completion:
    prompt_index: int
    """Index of the prompt in the request this completion answers."""
    token_ids: list[int]
    logprobs: list[float]
    """log p(token) under the sampling distribution (logits / temperature), one per token; may be empty when
    the request said logprobs=False."""
    text: str
    finish_reason: str = "length"
    """`stop` (EOS or a stop string) or `length`."""


class RolloutEngine(Protocol):
    def generate(self, prompt_ids: list[list[int]], params: SamplingParams) -> list[Completion]:
        """n completions per prompt, grouped: completions of prompt i are at [i*n, (i+1)*n)."""
        ...

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Replace the policy's weights (names as in the Hugging Face model's state_dict)."""
        ...


@dataclass
class Rollout:
    """One sampled completion with everything the learner needs; produced by the controller."""

    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]
    reward: float = 0.0
    advantage: float = 0.0
    group: int = 0
    extras: dict = field(default_factory=dict)
    truncated: bool = False
    """Cut at the token budget (finish reason `length`): algorithm.mask_truncated_completions drops it from the loss."""


def derive_seed(*parts: int) -> int:
    """A 31-bit sampling seed that depends on the whole tuple (e.g. run seed, step, draw, worker).

    Sums such as `base + step * 1000 + draw` and then `+ worker` overlap (worker 1 at draw d drew worker 0's seed at
    draw d + 1); a hash of the tuple gives distinct tuples distinct seeds, whatever their ranges."""
    digest = hashlib.blake2b(repr(tuple(int(p) for p in parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 33  # 31 bits: every RNG we hand it to (numpy legacy, torch) takes it
