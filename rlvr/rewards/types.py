"""The reward-function interface: what a user's function receives and may return.

A reward function is `fn(prompt: str, completion: str, reference: str, **kwargs) -> float | RewardResult`
(or an `async def` returning the same), named in the config by dotted path `package.module:function`.
Returning a bare float is allowed; a `RewardResult` also says *why* (verdict, extracted answer, reason).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Verdict(str, Enum):
    CORRECT = "correct"
    INCORRECT = "incorrect"
    NO_ANSWER = "no_answer"
    TIMEOUT = "timeout"
    ERROR = "error"


@dataclass(frozen=True)
class Sample:
    prompt: str
    completion: str
    reference: str


@dataclass
class RewardResult:
    score: float
    verdict: Verdict
    extracted: str | None = None
    reason: str = ""
    components: dict[str, float] = field(default_factory=dict)
    """Per-function scores (before weighting) when several functions are composed."""
    elapsed_s: float = 0.0
    """Wall-clock seconds the reward service spent on this sample (0.0 when called directly)."""
    failures: dict[str, str] = field(default_factory=dict)
    """Functions that raised or ran out of time on this sample, with the reason (what the health check counts);
    empty when the input itself was unusable."""
