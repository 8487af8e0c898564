"""GSM8K scoring exactly as lm-evaluation-harness defines it, so our numbers can be put next to published ones.

Source: EleutherAI/lm-evaluation-harness, lm_eval/tasks/gsm8k/gsm8k.yaml (task version 3.0), with the `regex` filter
of lm_eval/filters/extraction.py and `exact_match` of lm_eval/api/metrics.py:

- strict-match: the first match of `#### (\\-?[0-9\\.\\,]+)` (the GSM8K answer format), stripped.
- flexible-extract: the *last* match of `(-?[$0-9.,]{2,})|(-?[0-9]+)` (the last number-like run), stripped.
- no match gives the fallback "[invalid]", which never equals a gold answer.
- exact_match then deletes `,`, `\\$`, `(?s).*#### ` and `\\.$` (in that order) from both the prediction and the
  full reference solution (so the reference becomes the text after "#### "), lower-cases both and compares strings.

This is deliberately stricter than the RL reward in rlvr.rewards (which parses numbers, so "18.00" equals "18"):
the eval must be comparable with lm-eval, the reward must be forgiving enough to give a learning signal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STRICT_RE = re.compile(r"#### (\-?[0-9\.\,]+)")
FLEXIBLE_RE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
INVALID = "[invalid]"
# exact_match's regexes_to_ignore from gsm8k.yaml, applied in this order (order matters: "," goes before "\.$").
_IGNORE = (re.compile(","), re.compile(r"\$"), re.compile(r"(?s).*#### "), re.compile(r"\.$"))
METRICS = ("strict", "flexible")


def extract_strict(text: str) -> str | None:
    """First `#### N` answer (lm-eval strict-match: regex filter, group_select 0, take_first); None if absent."""
    matches = STRICT_RE.findall(text)
    return matches[0].strip() if matches else None


def extract_flexible(text: str) -> str | None:
    """Last number-like run (lm-eval flexible-extract: group_select -1, first non-empty group); None if absent."""
    matches = FLEXIBLE_RE.findall(text)
    if not matches:
        return None
    groups = [g for g in matches[-1] if g]
    return groups[0].strip() if groups else None


def normalize(text: str) -> str:
    """lm-eval exact_match normalisation with gsm8k.yaml's regexes_to_ignore and ignore_case."""
    for pattern in _IGNORE:
        text = pattern.sub("", text)
    return text.lower()


def gold_answer(solution: str) -> str:
    """The normalised reference: a GSM8K solution ending "#### 1,000" gives "1000"."""
    return normalize(solution)


@dataclass(frozen=True)
class Score:
    extracted: str | None
    """What the filter took from the output (None: no match, lm-eval's "[invalid]")."""
    correct: bool

    @property
    def verdict(self) -> str:
        if self.extracted is None:
            return "no_answer"
        return "correct" if self.correct else "incorrect"


def score(output: str, solution: str, metric: str) -> Score:
    """Score one model output against a GSM8K solution (full text or bare number) with `strict` or `flexible`."""
    if metric == "strict":
        extracted = extract_strict(output)
    elif metric == "flexible":
        extracted = extract_flexible(output)
    else:
        raise ValueError(f"unknown GSM8K metric {metric!r}; expected one of {METRICS}")
    # lm-eval compares the fallback string "[invalid]"; it can never equal a numeric gold, so None is equivalent.
    correct = extracted is not None and normalize(extracted) == gold_answer(solution)
    return Score(extracted, correct)
