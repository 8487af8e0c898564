"""GRPO group health: how many groups carry a learning signal.

GRPO's advantage is the reward minus its group mean (optionally over the group std). A group whose G rewards are all
equal (all solved or all failed) has zero advantage for every sample, so it contributes no policy gradient, only
noise in the loss normalisation and wasted generation. These helpers measure that before training (`preflight`)
and at every step (`zero_variance_fraction`), and pick the informative groups when the controller drops the rest
and refills the batch (DAPO's dynamic sampling).

Arrays are named by shape: `rewards_BG` is B groups (prompts) by G samples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from rlvr.eval.passk import pass_at_k
from rlvr.rewards.types import Sample
from rlvr.rollout.base import RolloutEngine, SamplingParams

# Rewards are floats from user functions; differences below this are rounding, not signal.
ATOL = 1e-6


def _as_BG(rewards_BG) -> np.ndarray:
    arr = np.asarray(rewards_BG, dtype=float)
    if arr.ndim != 2:
        raise ValueError(f"rewards must be a (groups, samples) array, got shape {arr.shape}")
    return arr


def mixed_group_mask(rewards_BG, atol: float = ATOL) -> np.ndarray:
    """Bool (B,): True where the group's rewards are not all equal, i.e. its advantages are not all zero."""
    arr = _as_BG(rewards_BG)
    return (arr.max(axis=1) - arr.min(axis=1)) > atol


def zero_variance_fraction(rewards_BG, atol: float = ATOL) -> float:
    """Share of groups whose rewards are all equal (they carry no gradient). 0.0 for an empty batch."""
    mask = mixed_group_mask(rewards_BG, atol)
    return float(1.0 - mask.mean()) if mask.size else 0.0


def select_informative_groups(rewards_BG, keep: int, atol: float = ATOL) -> np.ndarray:
    """Indices (ascending) of at most `keep` groups with mixed rewards, the first ones in batch order.

    Fewer than `keep` means the caller must draw more prompts to refill the batch. Taking them in order (not, say,
    the highest variance) keeps the selection from biasing which prompts the policy trains on.
    """
    if keep < 0:
        raise ValueError(f"keep must be >= 0, got {keep}")
    return np.flatnonzero(mixed_group_mask(rewards_BG, atol))[:keep]


def collect_informative_groups(
    draw: Callable[[], tuple[Sequence[Any], Any]], keep: int, max_draws: int
) -> tuple[list[Any], dict[str, float]]:
    """Call `draw()` -> (groups, rewards_BG) until `keep` mixed groups are collected or `max_draws` is reached.

    Returns the kept groups (at most `keep`; fewer only when max_draws ran out, so the caller decides whether to
    train on a short batch) and stats for the step's metrics: draws, groups seen, zero-variance fraction seen.
    """
    if keep < 1 or max_draws < 1:
        raise ValueError(f"keep and max_draws must be >= 1, got keep={keep} max_draws={max_draws}")
    kept: list[Any] = []
    seen = zero = draws = 0
    while len(kept) < keep and draws < max_draws:
        groups, rewards_BG = draw()
        draws += 1
        mask = mixed_group_mask(rewards_BG)
        if len(groups) != mask.size:
            raise ValueError(f"draw returned {len(groups)} groups but rewards for {mask.size}")
        seen += mask.size
        zero += int((~mask).sum())
        kept.extend(groups[i] for i in select_informative_groups(rewards_BG, keep - len(kept)))
    return kept, {"draws": draws, "groups_seen": seen, "zero_variance_fraction": zero / seen if seen else 0.0}


def mixed_probability(n: int, c: int, g: int) -> float:
    """Unbiased estimate, from n samples with c correct, that a group of g samples has both outcomes.

    P(all g correct) = C(c, g) / C(n, g) and P(all g wrong) = C(n - c, g) / C(n, g) (draws without replacement).
    """
    all_wrong = 1.0 - pass_at_k(n, c, g)
    all_right = 1.0 - pass_at_k(n, n - c, g)
    return 1.0 - all_wrong - all_right


def preflight(
    engine: RolloutEngine,
    prompts: Sequence[str],
    references: Sequence[str],
    reward_fn: Callable[[list[Sample]], Sequence[float]],
    G: int,
    *,
    encode: Callable[[str], list[int]],
    params: SamplingParams | None = None,
    correct_at: float = 1.0,
) -> dict[str, Any]:
    """Sample G completions for each prompt and report how many groups would train.

    `reward_fn` scores a batch of Samples (e.g. `lambda s: [r.score for r in service.score(s)]`); a sample counts as
    solved when its reward >= `correct_at`. Returns pass@G (share of prompts solved at least once), mixed_fraction
    (share of groups with unequal rewards: the ones that give a gradient), the all-solved / all-failed shares,
    and `mixed_fraction_by_G`: the estimated mixed share for smaller groups from the same samples.
    """
    if G < 2:
        raise ValueError(f"preflight needs G >= 2 (a group of one never has mixed rewards), got {G}")
    if len(prompts) != len(references) or not prompts:
        raise ValueError(f"need as many references as prompts (and at least one), got {len(prompts)}/{len(references)}")
    params = replace(params or SamplingParams(), n=G)
    completions = engine.generate([encode(p) for p in prompts], params)
    if [c.prompt_index for c in completions] != [i for i in range(len(prompts)) for _ in range(G)]:
        raise RuntimeError("engine did not return G completions per prompt, grouped in prompt order")
    samples = [Sample(prompts[c.prompt_index], c.text, references[c.prompt_index]) for c in completions]
    rewards_BG = np.asarray(reward_fn(samples), dtype=float).reshape(len(prompts), G)
    solved_BG = rewards_BG >= correct_at
    counts = solved_BG.sum(axis=1)
    by_g = {g: float(np.mean([mixed_probability(G, int(c), g) for c in counts])) for g in _powers_upto(G)}
    return {
        "prompts": len(prompts),
        "G": G,
        "pass_at_G": float((counts > 0).mean()),
        "pass_at_1": float(counts.mean() / G),
        "mixed_fraction": float(mixed_group_mask(rewards_BG).mean()),
        "all_solved_fraction": float((counts == G).mean()),
        "all_failed_fraction": float((counts == 0).mean()),
        "mean_reward": float(rewards_BG.mean()),
        "mixed_fraction_by_G": by_g,
    }


def _powers_upto(G: int) -> list[int]:
    gs = [g for g in (2, 4, 8, 16, 32, 64) if g < G]
    return gs + [G]
