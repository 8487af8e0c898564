"""After a weight sync, the rollout workers' logprobs equal the learners' for the same tokens."""

from __future__ import annotations

import pytest

from rlvr.actors.learner_group import LearnerGroup
from rlvr.actors.rollout_group import RolloutGroup
from rlvr.launch.cluster import Placement
from rlvr.model_io import load_tokenizer
from rlvr.rollout.base import Rollout, SamplingParams
from tests.conftest import tiny_config
from tests.test_learner_dp import make_rollouts

pytestmark = pytest.mark.slow


def test_rollout_logprobs_match_learner_after_sync(ray_cluster, tiny_model_dir, tmp_path):
    cfg = tiny_config(tiny_model_dir, tmp_path, "data.prompts_per_step=4", "rollout.samples_per_prompt=4",
                      "learner.micro_batch_size=4", "learner.lr=5e-2", "rollout.temperature=0.7",
                      "rollout.resources.num_cpus=0.5", "learner.resources.num_cpus=0.5",
                      "rewards.resources.num_cpus=0")
    placement = Placement(cfg)
    rollout = RolloutGroup(cfg, tiny_model_dir, placement.scheduling("rollout"))
    learners = LearnerGroup(cfg, tiny_model_dir, placement.scheduling("learner"), total_optim_steps=1)
    try:
        tok = load_tokenizer(tiny_model_dir)
        prompts = [tok.encode(p) for p in ("copy 3:", "1+2=", "copy 9:", "hello")]
        params = SamplingParams(n=4, temperature=0.7, max_new_tokens=6, seed=5)

        def max_gap() -> float:
            completions = rollout.generate(prompts, params)
            rollouts = [Rollout(prompts[c.prompt_index], c.token_ids, c.logprobs) for c in completions]
            learner_lp = learners.completion_logprobs(rollouts)
            return max(abs(a - b) for r, lp in zip(rollouts, learner_lp) for a, b in zip(r.logprobs, lp))

        assert max_gap() < 1e-4  # same initial weights
        learners.train_grpo(make_rollouts(16, vocab=len(tok)))  # the learners move away
        stale = max_gap()
        rollout.load_weights(learners.weights_ref())
        synced = max_gap()
        print(f"max |logprob gap|: stale {stale:.3e}, after sync {synced:.3e}")
        assert stale > 1e-2, "the training step did not change the policy"
        assert synced < 1e-4
    finally:
        rollout.shutdown()
        learners.shutdown()
        placement.remove()
