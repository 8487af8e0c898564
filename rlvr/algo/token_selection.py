"""Selective-token training (CGGR-style): per micro-batch, only a chosen share of the loss tokens carries the loss.

Pure functions on tensors plus one small object chosen once from `learner.token_selection`. Shapes: B rows, T
positions (a position scores the next token).

- `confidence`: the tokens whose target the model gives the lowest probability (score = -log p(target)).
- `entropy`: the positions of highest predictive entropy (the "20% forking tokens" of RL on LLMs).
- `random`: the same number of tokens, uniformly at random: the control that separates "which tokens" from
  "fewer tokens". Its draw is a function of (run seed, optimizer step, global micro-batch index) only, so a run is
  reproducible and N ranks draw what one rank drawing every micro-batch would.
- `all`: no selection (the plain loss path, unchanged).

How many tokens a micro-batch keeps depends only on how many loss tokens it has (`kept_count`), never on the
scores: the learner can then compute the global normaliser (selected tokens over all ranks and micro-batches)
before the first forward pass, exactly as for the plain loss, and two ranks still equal one rank.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

STRATEGIES = ("all", "confidence", "entropy", "random")


def kept_count(n_tokens: int, keep_fraction: float, min_tokens: int) -> int:
    """ceil(keep_fraction * n), at least min_tokens, at most n. round(): 0.7 * 10 is 7.000000000000001."""
    return min(n_tokens, max(min_tokens, math.ceil(round(keep_fraction * n_tokens, 6))))


def select_tokens(scores_BT: torch.Tensor, mask_BT: torch.Tensor, keep_fraction: float,
                  min_tokens: int) -> torch.Tensor:
    """Boolean keep_BT: the `kept_count` highest-scoring positions among those where mask_BT is set, over the
    whole micro-batch (not per row). Ties go to the earlier position in row-major order (a stable sort)."""
    mask_BT = mask_BT.bool()
    n = int(mask_BT.sum())
    k = kept_count(n, keep_fraction, min_tokens)
    if k >= n:
        return mask_BT.clone()
    flat_N = scores_BT.detach().float().masked_fill(~mask_BT, -math.inf).flatten()
    order_N = torch.argsort(flat_N, descending=True, stable=True)
    keep_N = torch.zeros_like(flat_N, dtype=torch.bool)
    keep_N[order_N[:k]] = True
    return keep_N.view_as(mask_BT)


def draw_seed(seed: int, step: int, micro_batch: int) -> int:
    """A 63-bit generator seed from (run seed, optimizer step, global micro-batch index): no collisions between
    neighbouring steps or micro-batches as a linear mix would risk."""
    digest = hashlib.sha256(f"{seed}/{step}/{micro_batch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


Scorer = Callable[[torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]
"""(logp_BT, entropy_BT, generator) -> scores_BT: higher is kept first."""

SCORERS: dict[str, Scorer] = {
    "confidence": lambda logp_BT, entropy_BT, gen: -logp_BT,
    "entropy": lambda logp_BT, entropy_BT, gen: entropy_BT,
    "random": lambda logp_BT, entropy_BT, gen: torch.rand(logp_BT.shape, generator=gen).to(logp_BT.device),
}


@dataclass(frozen=True)
class TokenSelection:
    """`learner.token_selection` as an object, built once at learner setup."""

    strategy: str = "all"
    keep_fraction: float = 1.0
    warmup_steps: int = 0
    """Optimizer steps at the start of the stage that train on every token (the scores of a fresh model mean
    little); the kept/dropped metrics are still logged."""
    min_tokens: int = 1
    seed: int = 0

    @property
    def active(self) -> bool:
        return self.strategy != "all"

    def fraction(self, step: int) -> float:
        return 1.0 if step < self.warmup_steps else self.keep_fraction

    def kept(self, n_tokens: int, step: int) -> int:
        """Tokens a micro-batch with n_tokens loss tokens keeps at this optimizer step."""
        return kept_count(n_tokens, self.fraction(step), self.min_tokens) if self.active else n_tokens

    def select(self, logp_BT: torch.Tensor, entropy_BT: torch.Tensor, mask_BT: torch.Tensor, step: int,
               micro_batch: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(draw_seed(self.seed, step, micro_batch))
        scores_BT = SCORERS[self.strategy](logp_BT, entropy_BT, gen)
        return select_tokens(scores_BT, mask_BT, self.fraction(step), self.min_tokens)


def build_selection(section, seed: int) -> TokenSelection:
    """From the config section (rlvr.config.TokenSelectionSection) and run.seed."""
    if section.strategy not in STRATEGIES:
        raise ValueError(f"learner.token_selection.strategy: unknown {section.strategy!r}")
    return TokenSelection(section.strategy, section.keep_fraction, section.warmup_steps, section.min_tokens, seed)


def selection_stats(keep_BT: torch.Tensor, mask_BT: torch.Tensor, logp_BT: torch.Tensor,
                    entropy_BT: torch.Tensor) -> dict[str, torch.Tensor]:
    """Sums (so they add over micro-batches and ranks) for `selection_metrics`, as 0-d tensors (no host sync).
    Confidence is p(target)."""
    keep_f = keep_BT.float()
    drop_f = (mask_BT.bool() & ~keep_BT.bool()).float()
    p_BT = logp_BT.detach().float().exp()
    ent_BT = entropy_BT.detach().float()
    return {"select_kept": keep_f.sum(), "select_dropped": drop_f.sum(),
            "select_entropy_kept": (ent_BT * keep_f).sum(), "select_entropy_dropped": (ent_BT * drop_f).sum(),
            "select_confidence_kept": (p_BT * keep_f).sum(), "select_confidence_dropped": (p_BT * drop_f).sum()}


def selection_metrics(stats: dict[str, float]) -> dict[str, float]:
    """`select/kept_fraction` and the mean entropy / confidence of kept and dropped tokens (empty without
    selection; a mean over no tokens, e.g. `dropped` at keep_fraction 1, is left out rather than logged as NaN)."""
    if "select_kept" not in stats:
        return {}
    counts = {"kept": stats["select_kept"], "dropped": stats["select_dropped"]}
    total = max(counts["kept"] + counts["dropped"], 1.0)
    out = {"select/kept_fraction": counts["kept"] / total}
    if "select_nll_all" in stats:  # the plain loss (mean NLL over every loss token), comparable across strategies
        out["select/nll_all_tokens"] = stats["select_nll_all"] / total
    for which, count in counts.items():
        if count > 0:
            for score in ("entropy", "confidence"):
                out[f"select/{score}_{which}"] = stats[f"select_{score}_{which}"] / count
    return out
