"""The controller's pure helpers: group construction, advantages per group, drop-and-refill."""

from __future__ import annotations

import pytest

from rlvr.config import load_config
from rlvr.rewards.types import RewardResult, Verdict
from rlvr.rollout.base import Completion
from rlvr.trainer.grpo_loop import Group, build_rollouts, refill_informative, sampling_params, zero_variance_fraction


def group(rewards: list[float], prompt: int = 0) -> Group:
    completions = [Completion(0, [prompt, i], [-1.0, -1.0], "") for i in range(len(rewards))]
    results = [RewardResult(r, Verdict.CORRECT if r else Verdict.INCORRECT) for r in rewards]
    return Group([prompt], completions, results)


def test_build_rollouts_normalises_within_each_group():
    rollouts, rewards_BG = build_rollouts([group([1, 0], 7), group([0, 0], 8)], scale_by_std=False)
    assert rewards_BG.tolist() == [[1, 0], [0, 0]]
    assert [r.advantage for r in rollouts] == [0.5, -0.5, 0.0, 0.0]
    assert [r.prompt_ids for r in rollouts] == [[7], [7], [8], [8]]
    assert [r.group for r in rollouts] == [0, 0, 1, 1]


def test_refill_keeps_informative_groups_and_batch_size():
    first = [group([1, 1]), group([0, 1]), group([0, 0])]
    fresh = iter([[group([1, 0], 5), group([0, 0], 6), group([1, 1], 7)], [group([0, 1], 9)] * 3])
    kept, draws = refill_informative(first, lambda d: next(fresh), max_draws=4)
    assert draws == 2 and len(kept) == 3
    assert zero_variance_fraction(kept) == 0.0
    assert [g.prompt_ids for g in kept] == [[0], [5], [9]]


def test_refill_tops_up_with_zero_variance_groups_when_draws_run_out():
    first = [group([1, 1]), group([0, 1])]
    kept, draws = refill_informative(first, lambda d: [group([0, 0], 3), group([0, 0], 4)], max_draws=1)
    assert draws == 1 and len(kept) == 2
    assert zero_variance_fraction(kept) == pytest.approx(0.5)


def test_sampling_seed_depends_only_on_step_and_draw():
    cfg = load_config(None, ["model.random_init.hidden_size=64"])
    seeds = {sampling_params(cfg, s, d).seed for s in range(50) for d in range(5)}
    assert len(seeds) == 250
    assert sampling_params(cfg, 3).seed == sampling_params(cfg, 3).seed


def test_worker_seeds_never_overlap_across_steps_draws_workers_and_run_seeds():
    """Every (run seed, step, refill draw, worker) samples with its own seed (issue 19: worker 1 at draw d reused
    worker 0's seed at draw d + 1, so a refill drew the same completions again)."""
    from rlvr.actors.rollout_group import worker_seeds

    keys = {}
    for run_seed in (0, 1, 1000):
        cfg = load_config(None, ["model.random_init.hidden_size=64", f"run.seed={run_seed}"])
        for step in range(30):
            for draw in range(5):
                for worker, seed in enumerate(worker_seeds(sampling_params(cfg, step, draw).seed, 4)):
                    assert seed not in keys, f"{(run_seed, step, draw, worker)} reuses the seed of {keys[seed]}"
                    assert 0 <= seed < 2**63
                    keys[seed] = (run_seed, step, draw, worker)
    assert worker_seeds(None, 2) == [None, None]
