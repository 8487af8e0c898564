"""Pass-rate maps: how often the current model solves each training prompt, and data filters built on them.

A map is a JSONL file, one line per prompt: `{"id", "k", "correct", "pass_rate", "mean_reward"}`, keyed by a hash of
the prompt text (`prompt_id`), so it stays valid whatever the order or subset a later run loads. It is written by
`rlvr passrate` (rlvr.launch.passrate_cli) and read back by `band_filter`/`edge_filter`, plain `records -> records`
functions over training examples: at a few % accuracy almost every GRPO group is all-wrong, and a prompt the model
never (or always) solves gives no gradient, so training spends its samples on the prompts in between.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from rlvr.config import ConfigError, PassRateFilter

R = TypeVar("R")  # an Example (`.prompt`) or a canonical prompt record (`{"prompt": ...}`, rlvr.data.records)
Filter = Callable[[list[R]], list[R]]


def _prompt_of(record: Any) -> str | None:
    """The prompt text of an Example or a prompt record; None for records without one (chats, documents)."""
    if isinstance(record, dict):
        return record.get("prompt")
    return record.prompt


def prompt_id(prompt: str) -> str:
    """Stable key of a prompt's text (not of its position: maps survive reordering and subsets)."""
    return hashlib.sha1(prompt.encode("utf-8")).hexdigest()[:16]


def passrate_record(prompt: str, rewards: Sequence[float], correct_at: float = 1.0) -> dict:
    k = len(rewards)
    correct = sum(r >= correct_at for r in rewards)
    return {"id": prompt_id(prompt), "k": k, "correct": int(correct), "pass_rate": correct / k,
            "mean_reward": sum(rewards) / k}


def read_records(path: str | Path) -> list[dict]:
    """The map's lines as written (none if the file does not exist yet)."""
    p = Path(path)
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()] if p.exists() else []


def read_map(path: str | Path) -> dict[str, float]:
    """id -> pass rate; a bad line is a ConfigError naming file and line."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"pass-rate map {str(p)!r} does not exist (write one with `rlvr passrate CONFIG --out ...`)")
    rates: dict[str, float] = {}
    with p.open() as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                rates[str(row["id"])] = float(row["pass_rate"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                raise ConfigError(f"{p}:{lineno}: not a pass-rate line (needs JSON with 'id' and 'pass_rate')") from None
    return rates


def histogram(records: Sequence[dict]) -> dict:
    """Counts of prompts by number of correct samples (0..K), and the never/always/mixed shares."""
    if not records:
        raise ValueError("no pass-rate records")
    k = max(r["k"] for r in records)
    counts = [0] * (k + 1)
    for r in records:
        counts[r["correct"]] += 1
    n = len(records)
    return {"prompts": n, "k": k, "by_correct": {str(c): counts[c] for c in range(k + 1)},
            "never_solved": counts[0] / n, "always_solved": sum(r["correct"] == r["k"] for r in records) / n,
            "mixed": sum(0 < r["correct"] < r["k"] for r in records) / n,
            "mean_pass_rate": sum(r["pass_rate"] for r in records) / n}


def format_histogram(h: dict, width: int = 40) -> str:
    top = max(h["by_correct"].values()) or 1
    lines = [f"pass-rate map: {h['prompts']} prompts x K={h['k']}; never solved {h['never_solved']:.1%}, "
             f"mixed {h['mixed']:.1%}, always solved {h['always_solved']:.1%}, mean pass rate {h['mean_pass_rate']:.3f}"]
    for c, n in h["by_correct"].items():
        lines.append(f"  {c:>3}/{h['k']} correct {n:>6} {'#' * round(width * n / top)}")
    return "\n".join(lines)


def in_band(p: float, above: float, below: float) -> bool:
    return above < p < below


def band_filter(rates: dict[str, float], above: float = 0.0, below: float = 1.0, keep_unmeasured: bool = False) -> Filter:
    """Keep examples whose prompt's pass rate is strictly between `above` and `below` (records without a prompt
    pass unchanged)."""
    def keep(records: list[R]) -> list[R]:
        out = []
        for ex in records:
            prompt = _prompt_of(ex)
            p = None if prompt is None else rates.get(prompt_id(prompt))
            if prompt is None or (p is None and keep_unmeasured) or (p is not None and in_band(p, above, below)):
                out.append(ex)
        return out
    return keep


def edge_filter(rates: dict[str, float], above: float = 0.0, below: float = 1.0, repeats: int = 3,
                keep_unmeasured: bool = False) -> Filter:
    """The band, with each prompt repeated 1 + round(repeats * 4p(1-p)) times: p = 0.5 (where a group's reward
    variance, and so its gradient, is largest) is drawn 1 + repeats times as often as the band's edges."""
    band = band_filter(rates, above, below, keep_unmeasured)

    def weight(records: list[R]) -> list[R]:
        out = []
        for ex in band(records):
            prompt = _prompt_of(ex)
            p = 0.5 if prompt is None else rates.get(prompt_id(prompt), 0.5)
            out.extend([ex] * (1 + round(repeats * 4 * p * (1 - p))))
        return out
    return weight


def build_filter(cfg: PassRateFilter) -> Filter:
    rates = read_map(cfg.path)
    keep = cfg.unmeasured == "keep"
    if cfg.mode == "edge":
        return edge_filter(rates, cfg.above, cfg.below, cfg.edge_repeats, keep)
    return band_filter(rates, cfg.above, cfg.below, keep)


def apply_filter(cfg: PassRateFilter | None, examples: list[R]) -> list[R]:
    if cfg is None:
        return examples
    kept = build_filter(cfg)(examples)
    if not kept:
        raise ConfigError(f"data.passrate_filter: no training prompt of {len(examples)} has a pass rate in "
                          f"({cfg.above}, {cfg.below}) in {cfg.path}")
    print(f"[rlvr] pass-rate filter ({cfg.mode} {cfg.above} < p < {cfg.below}): {len(kept)} training prompts "
          f"from {len(examples)}", flush=True)
    return kept
