"""Weight sync as one object: the transport chosen from the config, the colocated sleep/wake order it owns, and a
name filter that sends only some weights (what a LoRA strategy will use to send adapters only)."""

from __future__ import annotations

import pytest
import torch

from rlvr.launch.components import build_weight_sync
from rlvr.trainer.weight_sync import Colocated, CudaIpcSync, NcclSync, ObjectStoreSync
from tests.conftest import tiny_config


class Recorder:
    """Rollout and learner groups in one: records the calls a weight sync makes, in order."""

    def __init__(self):
        self.calls: list[tuple] = []

    def __getattr__(self, name):
        return lambda *args: self.calls.append((name, *args))


@pytest.mark.parametrize("transport,colocate,kind", [
    ("object_store", False, ObjectStoreSync), ("cuda_ipc", True, CudaIpcSync), ("nccl", False, NcclSync)])
def test_transport_is_chosen_once_from_the_config(tiny_model_dir, tmp_path, transport, colocate, kind):
    extra = ["rollout.engine=vllm", "learner.resources.num_gpus=1", "rollout.resources.num_gpus=1"]
    cfg = tiny_config(tiny_model_dir, tmp_path, f"rollout.weight_sync={transport}", f"rollout.colocate={colocate}",
                      *(extra if transport != "object_store" else []))
    sync = build_weight_sync(cfg, Recorder(), Recorder())
    assert isinstance(sync.inner if colocate else sync, kind)
    assert isinstance(sync, Colocated) == colocate


def test_colocated_engines_sleep_for_the_update_and_wake_weights_first(tiny_model_dir, tmp_path):
    cfg = tiny_config(tiny_model_dir, tmp_path, "rollout.engine=vllm", "rollout.weight_sync=cuda_ipc",
                      "rollout.colocate=true", "rollout.sleep_level=2", "learner.resources.num_gpus=1",
                      "rollout.resources.num_gpus=1")
    shared = Recorder()  # one log for both groups: the order across them is what matters
    sync = build_weight_sync(cfg, shared, shared)
    sync.setup()
    sync.before_update()
    sync.push()
    bucket = cfg.rollout.sync_bucket_mb
    assert shared.calls == [("setup_weight_ipc", shared, bucket), ("sleep", 2), ("wake_up", ["weights"]),
                            ("push_weights_ipc", None), ("wake_up", ["kv_cache"])]


@pytest.mark.slow
def test_object_store_sync_with_a_name_filter_sends_only_those_weights(ray_cluster, tiny_model_dir, tmp_path):
    from rlvr.actors.learner_group import LearnerGroup
    from rlvr.actors.rollout_group import RolloutGroup
    from rlvr.launch.cluster import Placement
    from rlvr.model_io import load_model
    from tests.test_learner_dp import make_rollouts

    cfg = tiny_config(tiny_model_dir, tmp_path, "data.prompts_per_step=4", "rollout.samples_per_prompt=4",
                      "learner.micro_batch_size=4", "learner.lr=5e-2", "rollout.resources.num_cpus=0.5",
                      "learner.resources.num_cpus=0.5", "rewards.resources.num_cpus=0")
    placement = Placement(cfg)
    rollout = RolloutGroup(cfg, tiny_model_dir, placement.scheduling("rollout"))
    learners = LearnerGroup(cfg, tiny_model_dir, placement.scheduling("learner"), total_optim_steps=1)
    try:
        learners.train_grpo(make_rollouts(16, vocab=60))
        ObjectStoreSync(learners, rollout, keep=lambda name: "mlp" in name).push()
        import ray

        engine = ray.get(rollout.actors[0].__ray_call__.remote(lambda w: w.engine.model.state_dict()), timeout=120)
        trained = ray.get(learners.weights_ref(), timeout=120)
    finally:
        rollout.shutdown()
        learners.shutdown()
        placement.remove()
    initial = load_model(tiny_model_dir).state_dict()
    mlp = [k for k in trained if "mlp" in k]
    assert mlp and all(torch.equal(engine[k], trained[k]) for k in mlp)  # sent
    moved = [k for k in trained if "mlp" not in k and not torch.equal(trained[k], initial[k])]
    assert moved and all(torch.equal(engine[k], initial[k]) for k in moved)  # trained, but not sent
