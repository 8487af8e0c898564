"""Data parallelism is exact: two DeepSpeed ranks after one step hold the same weights as one rank on the same batch."""

from __future__ import annotations

import random

import pytest
import torch

from rlvr.actors.learner_group import LearnerGroup
from rlvr.launch.cluster import Placement
from rlvr.rollout.base import Rollout
from tests.conftest import tiny_config

pytestmark = pytest.mark.slow


def make_rollouts(n: int, vocab: int, seed: int = 0) -> list[Rollout]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        prompt = [rng.randrange(4, vocab) for _ in range(rng.randint(3, 6))]
        completion = [rng.randrange(4, vocab) for _ in range(rng.randint(1, 7))]  # uneven lengths on purpose
        out.append(Rollout(prompt, completion, [0.0] * len(completion), advantage=rng.uniform(-1.5, 1.5)))
    return out


def train_once(cfg, model_dir: str, rollouts: list[Rollout]) -> dict[str, torch.Tensor]:
    placement = Placement(cfg)
    group = LearnerGroup(cfg, model_dir, placement.scheduling("learner"), total_optim_steps=1)
    try:
        group.train_grpo(rollouts)
        import ray

        return ray.get(group.weights_ref())
    finally:
        group.shutdown()
        placement.remove()


PACKED = ["learner.max_tokens_per_micro_batch=24"]  # <= 24 tokens: the ranks get different numbers of them


@pytest.mark.parametrize("zero_stage,loss_agg,mini_batches,packing", [
    (2, "token_mean", 1, []), (3, "seq_mean", 1, []), (2, "token_mean", 2, []),
    (2, "token_mean", 2, [*PACKED, "learner.logprob_chunk_tokens=5"]), (3, "seq_mean", 1, PACKED)],
    ids=["zero2", "zero3_seq", "zero2_mini2", "zero2_mini2_packed_chunked", "zero3_seq_packed"])
def test_two_ranks_equal_one_rank(ray_cluster, tiny_model_dir, tmp_path, zero_stage, loss_agg, mini_batches,
                                  packing):
    common = [*packing, "data.prompts_per_step=4", "rollout.samples_per_prompt=4", "learner.micro_batch_size=2",
              "learner.lr=1e-2", f"learner.zero_stage={zero_stage}", f"algorithm.loss_agg={loss_agg}",
              "rollout.num_actors=1", "rewards.num_workers=1", f"algorithm.mini_batches={mini_batches}",
              "learner.resources.num_cpus=1", "rollout.resources.num_cpus=0", "rewards.resources.num_cpus=0"]
    one = tiny_config(tiny_model_dir, tmp_path / "one", "learner.num_actors=1", *common)
    two = tiny_config(tiny_model_dir, tmp_path / "two", "learner.num_actors=2", *common)
    assert (one.grad_accum_steps, two.grad_accum_steps) == (8 // mini_batches, 4 // mini_batches)
    rollouts = make_rollouts(16, vocab=60)
    w1 = train_once(one, tiny_model_dir, rollouts)
    w2 = train_once(two, tiny_model_dir, rollouts)
    from rlvr.model_io import load_model

    w0 = load_model(tiny_model_dir).state_dict()
    moved = max((w1[k] - w0[k]).abs().max().item() for k in w0)
    assert moved > 1e-3, "the step did not change the weights"
    diff = max((w1[k] - w2[k]).abs().max().item() for k in w1)
    print(f"zero={zero_stage} agg={loss_agg} mini_batches={mini_batches}: max |w_1rank - w_2ranks| = {diff:.2e}, max update = {moved:.2e}")
    assert diff < 1e-5
