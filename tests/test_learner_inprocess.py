"""The learner without Ray: one rank (world size 1, gloo) built and driven in this process, and a policy loss
registered by name that the learner then uses."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from rlvr.algo.losses import LOSSES, LossInputs, PolicyLoss, clipped_grpo, register_loss
from rlvr.config import ConfigError
from rlvr.launch.components import check_loss
from rlvr.learner.deepspeed_setup import free_port
from rlvr.learner.learner import Learner
from rlvr.learner.old_logprobs import OnPolicy
from rlvr.model_io import load_model
from rlvr.trainer.metrics import learner_metrics
from tests.conftest import tiny_config
from tests.test_learner_dp import make_rollouts

COMMON = ("data.prompts_per_step=4", "rollout.samples_per_prompt=4", "learner.micro_batch_size=4",
          "learner.num_actors=1", "learner.backend=gloo", "learner.lr=1e-2")


@pytest.fixture(scope="session")  # destroyed once, at the end: DeepSpeed cannot re-create it in-process
def process_group():
    """DeepSpeed creates the (one-rank) process group on the first setup and reuses it for later learners."""
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


def build(model_dir: str, tmp_path, *overrides: str) -> Learner:
    cfg = tiny_config(model_dir, tmp_path, *COMMON, *overrides)
    learner = Learner(cfg, model_dir, rank=0, world_size=1)
    learner.setup("127.0.0.1", free_port(), cfg.grad_accum_steps, total_optim_steps=2)
    return learner


def test_one_rank_trains_in_process(process_group, tiny_model_dir, tmp_path):
    learner = build(tiny_model_dir, tmp_path)
    rollouts = make_rollouts(16, vocab=60)
    before = learner.completion_logprobs(rollouts)
    stats = learner.train_grpo(rollouts)
    after = learner.completion_logprobs(rollouts)
    w0 = load_model(tiny_model_dir).state_dict()
    w1 = learner.state_dict()
    assert list(w1) == list(w0)
    assert max((w1[k] - w0[k]).abs().max().item() for k in w0) > 1e-3, "the update did not change the weights"
    assert max(abs(a - b) for x, y in zip(before, after) for a, b in zip(x, y)) > 1e-3
    assert stats["tokens"] == sum(len(r.completion_ids) for r in rollouts)
    metrics = learner_metrics(stats)
    assert {"learner/pg_loss", "learner/clip_fraction", "learner/entropy", "learner/log_ratio_abs"} <= set(metrics)
    assert metrics["learner/log_ratio_abs"] == 0.0  # on-policy, one step: the old policy is the current one
    assert isinstance(learner.old_logprobs, OnPolicy)


def test_an_unknown_loss_is_a_config_error_before_any_actor(tiny_model_dir, tmp_path):
    cfg = tiny_config(tiny_model_dir, tmp_path, "algorithm.loss=no_such_loss")
    with pytest.raises(ConfigError, match=r"algorithm.loss: unknown loss 'no_such_loss' \(registered: .*grpo"):
        check_loss(cfg)


SCALE = 3.0


@pytest.fixture
def tripled_loss():
    """A loss registered by name: three times the clipped GRPO loss, plus a statistic of its own."""

    @register_loss("tripled_grpo")
    def tripled(alg) -> PolicyLoss:
        base = clipped_grpo(alg)

        def loss(inputs: LossInputs, normalizer: float):
            value, stats = base(inputs, normalizer)
            return SCALE * value, {**stats, "probe_sum": 7.0 * stats["tokens"]}

        return PolicyLoss(loss, base.aggregation)

    yield "tripled_grpo"
    del LOSSES["tripled_grpo"]


def test_a_registered_loss_is_the_one_the_learner_uses(process_group, tiny_model_dir, tmp_path, tripled_loss):
    rollouts = make_rollouts(16, vocab=60, seed=1)
    # grad_clip=0: DeepSpeed reports the norm it would clip, and nothing rescales the gradient in between
    plain = build(tiny_model_dir, tmp_path / "plain", "learner.grad_clip=0").train_grpo(rollouts)
    tripled = build(tiny_model_dir, tmp_path / "tripled", "learner.grad_clip=0",
                    f"algorithm.loss={tripled_loss}").train_grpo(rollouts)
    assert plain["grad_norm"] > 0
    assert tripled["grad_norm"] == pytest.approx(SCALE * plain["grad_norm"], rel=1e-4)
    assert learner_metrics(tripled)["learner/probe"] == pytest.approx(7.0)  # logged by name, no change to metrics
    assert "learner/probe" not in learner_metrics(plain)
