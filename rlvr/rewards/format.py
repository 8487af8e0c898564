"""The built-in format reward: the completion must contain each required tag pair, once and in order.

Config example (composed with the math reward):

    rewards:
      functions:
        - {path: rlvr.rewards.math:math_reward, weight: 1.0}
        - {path: rlvr.rewards.format:format_reward, weight: 0.1, kwargs: {tags: [think, answer]}}
"""

from __future__ import annotations

from collections.abc import Sequence

from rlvr.rewards.extract import extract_gsm8k_strict
from rlvr.rewards.types import RewardResult, Verdict


def gsm8k_format_reward(prompt: str, completion: str, reference: str) -> RewardResult:
    """1.0 if the completion states a number in GSM8K's own format ("#### 42", what strict-match scoring reads),
    right or wrong; composed with the math reward it pays a little for an answer the grader can find."""
    answer = extract_gsm8k_strict(completion)
    if answer is None:
        return RewardResult(0.0, Verdict.INCORRECT, reason='no "#### <number>" in the completion')
    return RewardResult(1.0, Verdict.CORRECT, reason=f"states #### {answer}")


def format_reward(
    prompt: str,
    completion: str,
    reference: str,
    *,
    tags: Sequence[str] = ("think",),
    must_start: bool = False,
) -> RewardResult:
    """1.0 if every `<tag>...</tag>` pair occurs exactly once, pairs follow one another in the order given,
    and (with `must_start`) the completion opens with the first tag; 0.0 otherwise, with the first problem as the
    reason. The reference is not used: format is judged on the completion alone.
    """
    if must_start and tags and not completion.lstrip().startswith(f"<{tags[0]}>"):
        return RewardResult(0.0, Verdict.INCORRECT, reason=f"completion does not start with <{tags[0]}>")
    position = 0
    for tag in tags:
        problem = _tag_problem(completion, tag, position)
        if isinstance(problem, str):
            return RewardResult(0.0, Verdict.INCORRECT, reason=problem)
        position = problem
    names = ", ".join(f"<{t}>" for t in tags)
    return RewardResult(1.0, Verdict.CORRECT, reason=f"has {names} in order")


def _tag_problem(text: str, tag: str, after: int) -> str | int:
    """What is wrong with `<tag>...</tag>` in `text` (a reason), or the index just past its closing tag."""
    opening, closing = f"<{tag}>", f"</{tag}>"
    for marker in (opening, closing):
        count = text.count(marker)
        if count != 1:
            return f"{marker} occurs {count} times, expected once"
    start, end = text.find(opening), text.find(closing)
    if end < start:
        return f"{closing} comes before {opening}"
    if start < after:
        return f"{opening} comes before the previous tag closes"
    return end + len(closing)
