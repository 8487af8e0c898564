"""LoRA weight sync, both ways, through Ray: after a merged sync (full weights under the base names) and after an
adapter-only sync (the HF engine wraps its model with peft), the rollout workers' logprobs equal the learners'."""

from __future__ import annotations

import pytest
import ray

from rlvr.actors.learner_group import LearnerGroup
from rlvr.actors.rollout_group import RolloutGroup
from rlvr.launch.cluster import Placement
from rlvr.launch.components import build_weight_sync
from rlvr.model_io import load_tokenizer
from rlvr.rollout.base import Rollout, SamplingParams
from rlvr.trainer.weight_sync import AdapterSync, ObjectStoreSync
from tests.conftest import tiny_config
from tests.test_learner_dp import make_rollouts
from tests.test_lora import LORA

pytestmark = pytest.mark.slow


def test_rollout_logprobs_match_learner_after_merged_and_adapter_sync(ray_cluster, tiny_model_dir, tmp_path):
    common = ("data.prompts_per_step=4", "rollout.samples_per_prompt=4", "learner.micro_batch_size=4",
              "learner.num_actors=1", "rollout.num_actors=1", "learner.lr=5e-2", "rollout.temperature=0.7",
              "rollout.resources.num_cpus=0.5", "learner.resources.num_cpus=0.5", "rewards.resources.num_cpus=0",
              *LORA)
    cfg = tiny_config(tiny_model_dir, tmp_path, *common)
    adapter_cfg = tiny_config(tiny_model_dir, tmp_path, *common, "learner.lora.sync=adapter", "run.name=adapter")
    placement, placement2 = Placement(cfg), Placement(adapter_cfg)  # a bundle (and a name) per rollout worker
    merged = RolloutGroup(cfg, tiny_model_dir, placement.scheduling("rollout"))
    adapted = RolloutGroup(adapter_cfg, tiny_model_dir, placement2.scheduling("rollout"))
    learners = LearnerGroup(cfg, tiny_model_dir, placement.scheduling("learner"), total_optim_steps=2)
    try:
        tok = load_tokenizer(tiny_model_dir)
        prompts = [tok.encode(p) for p in ("copy 3:", "1+2=", "copy 9:", "hello")]
        params = SamplingParams(n=4, temperature=0.7, max_new_tokens=6, seed=5)

        def max_gap(rollout) -> float:
            completions = rollout.generate(prompts, params)
            rollouts = [Rollout(prompts[c.prompt_index], c.token_ids, c.logprobs) for c in completions]
            learner_lp = learners.completion_logprobs(rollouts)
            return max(abs(a - b) for r, lp in zip(rollouts, learner_lp) for a, b in zip(r.logprobs, lp))

        for step in range(2):  # B starts at zero: the second step moves A as well
            learners.train_grpo(make_rollouts(16, vocab=len(tok), seed=step))
        stale = max_gap(merged)
        merged_sync = build_weight_sync(cfg, merged, learners)
        adapter_sync = build_weight_sync(adapter_cfg, adapted, learners)
        assert isinstance(merged_sync, ObjectStoreSync) and isinstance(adapter_sync, AdapterSync)
        merged_sync.push()
        adapter_sync.push()
        gaps = max_gap(merged), max_gap(adapted)
        full_bytes = sum(t.numel() * t.element_size() for t in ray.get(learners.weights_ref()).values())
        print(f"max |logprob gap|: stale {stale:.3e}, merged {gaps[0]:.3e}, adapter {gaps[1]:.3e}; "
              f"adapter sync {adapter_sync.bytes_last} B vs full {full_bytes} B")
        assert stale > 1e-2, "training did not change the policy"
        assert gaps[0] < 1e-4 and gaps[1] < 1e-4
        assert 0 < adapter_sync.bytes_last < full_bytes / 4
        # a resumed run restores through the sync object: the adapter again, never merged weights on top of it
        adapter_sync.restore(learners, adapted)
        assert max_gap(adapted) < 1e-4
    finally:
        merged.shutdown()
        adapted.shutdown()
        learners.shutdown()
        placement.remove()
        placement2.remove()


def test_lora_run_resumed_matches_uninterrupted(ray_cluster, tiny_model_dir, tmp_path):
    """Through the GRPO loop with adapter-only sync: resumed from its checkpoint at 2 steps (adapters, optimizer and
    schedule restored; the engines get the adapter again), a run logs what the uninterrupted run logs."""
    from tests import rl_runs

    lora = (*LORA, "learner.lora.sync=adapter", "algorithm.kl_coef=0.05", "learner.lr=2e-2",
            "learner.num_actors=1", "rollout.num_actors=1")  # fewer actors: this test runs 2 GRPO runs

    snapshot = rl_runs.copy_after_checkpoint(tmp_path / "whole", tmp_path / "cut", step=2)
    rl_runs.run(rl_runs.config(tiny_model_dir, tmp_path / "whole", *lora), on_step=snapshot)
    want = rl_runs.rows(tmp_path / "whole")
    assert all(r["weight_sync/bytes"] == want[0]["weight_sync/bytes"] > 0 for r in want)
    assert [r["step"] for r in rl_runs.rows(tmp_path / "cut")] == [0, 1, 2]
    ran: list[int] = []  # a resume that started over would log the same numbers too
    rl_runs.run(rl_runs.config(tiny_model_dir, tmp_path / "cut", *lora, "checkpoint.resume=true"), on_step=ran.append)
    assert ran == [2, 3]
    rl_runs.assert_same_metrics(rl_runs.rows(tmp_path / "cut"), want)
