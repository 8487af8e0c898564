"""weight_sync=nccl: config checks, and the transport-independent parts on CPU.

On CPU: the ZeRO-3 generator that feeds the broadcast (one gathered parameter at a time, from a real 2-rank
DeepSpeed learner) and the bucket protocol itself over a gloo group between two processes. On two GPUs with vLLM:
a learner broadcasts to a real engine by NCCL and the engine's logprobs then match the learner's.
"""

from __future__ import annotations

import importlib.util
import os

import pytest
import ray
import torch
import torch.distributed as dist

from rlvr.config import ConfigError, load_config
from rlvr.rollout.weight_sync import (
    BucketPlan,
    broadcast_buckets,
    broadcast_ranks,
    plan_for,
    receive_buckets,
)
from rlvr.learner.full_weights import iter_full_weights, weight_metas
from tests.conftest import tiny_config
from tests.test_vllm_engine import tiny_state_dict

BASE = ["model.random_init.hidden_size=64"]
SEPARATE_GPUS = ["rollout.engine=vllm", "rollout.weight_sync=nccl", "learner.resources.num_gpus=1",
                 "rollout.resources.num_gpus=1"]


# ---------------------------------------------------------------------------------------------------------------
# Config


def test_nccl_config_accepts_vllm_on_separate_gpus():
    assert load_config(None, BASE + SEPARATE_GPUS).rollout.weight_sync == "nccl"


@pytest.mark.parametrize("sets,expected", [
    (["rollout.weight_sync=nccl"], "config rollout: rollout.weight_sync=nccl needs rollout.engine=vllm"),
    (SEPARATE_GPUS + ["rollout.colocate=true"], "use rollout.weight_sync=cuda_ipc when sharing a GPU"),
    (SEPARATE_GPUS + ["learner.resources.num_gpus=0.5"], "needs whole GPUs per actor, but learner.resources.num_gpus is 0.5"),
    (SEPARATE_GPUS + ["rollout.resources.num_gpus=0"], "needs whole GPUs per actor, but rollout.resources.num_gpus is 0"),
])
def test_nccl_config_errors_name_the_fix(sets, expected):
    with pytest.raises(ConfigError, match=expected.replace(".", r"\.")):
        load_config(None, BASE + sets)


def test_gpu_nccl_preset_loads():
    # runs only on the lent 2-GPU machine: a typo must still fail here, not after a device start
    from pathlib import Path

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "gpu_smollm2_grpo_nccl.yaml")
    r, lr = cfg.rollout, cfg.learner
    assert (r.engine, r.weight_sync, r.colocate) == ("vllm", "nccl", False)
    assert (r.resources.num_gpus, lr.resources.num_gpus, lr.num_actors) == (1, 1, 1)  # one GPU each: two in all


def test_broadcast_ranks_put_each_engine_after_the_last():
    assert broadcast_ranks([1]) == (2, [1])
    assert broadcast_ranks([2, 1, 4]) == (8, [1, 3, 4])  # learner 0; engine 0: 1-2, engine 1: 3, engine 2: 4-7


# ---------------------------------------------------------------------------------------------------------------
# ZeRO-3: what the learner packs, one gathered parameter at a time


def gathered_on_rank(learner) -> dict | None:
    """Runs inside a learner actor: iterate the sync's generator as broadcast_weights does; rank 0 keeps copies."""
    module = learner.engine.module
    named = iter_full_weights(module)
    if learner.rank != 0:
        for _ in named:
            pass
        return None
    partitioned_before = sum(p.numel() == 0 for p in module.parameters())
    got, most_gathered = [], 0
    for name, t in named:
        got.append((name, t.to("cpu", copy=True)))
        most_gathered = max(most_gathered, sum(p.numel() > 0 for p in module.parameters()))
    return {"metas": weight_metas(module), "weights": got, "partitioned_before": partitioned_before,
            "params": len(list(module.parameters())), "most_gathered": most_gathered}


@pytest.mark.slow
def test_zero3_generator_yields_rank0_full_state_dict(ray_cluster, tiny_model_dir, tmp_path):
    from rlvr.actors.learner_group import LearnerGroup
    from rlvr.launch.cluster import Placement

    cfg = tiny_config(tiny_model_dir, tmp_path, "learner.num_actors=2", "learner.zero_stage=3",
                      "learner.micro_batch_size=2", "data.prompts_per_step=4", "rollout.samples_per_prompt=1",
                      "learner.resources.num_cpus=1")
    placement = Placement(cfg, ("learner",))
    group = LearnerGroup(cfg, tiny_model_dir, placement.scheduling("learner"), total_optim_steps=1)
    try:
        rank0, rank1 = ray.get([a.__ray_call__.remote(gathered_on_rank) for a in group.actors], timeout=300)
        expected = ray.get(group.weights_ref())
    finally:
        group.shutdown()
        placement.remove()
    assert rank1 is None
    # every parameter was partitioned, so every one had to be gathered; and never more than one at a time
    assert rank0["partitioned_before"] == rank0["params"]
    assert rank0["most_gathered"] == 1
    names = [n for n, _ in rank0["weights"]]
    assert names == list(expected)  # state_dict names and order, tied embedding included
    assert [(n, tuple(t.shape), t.dtype) for n, t in rank0["weights"]] == [tuple(m) for m in rank0["metas"]]
    for name, t in rank0["weights"]:
        assert torch.equal(t, expected[name]), name


# ---------------------------------------------------------------------------------------------------------------
# The bucket protocol over gloo: the same functions the NCCL path runs, between two processes


class GlooPeer:
    """One end of a two-process gloo group: rank 0 plays learner rank 0, rank 1 a vLLM worker."""

    def __init__(self, rank: int, port: int):
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)

    def broadcast(self, tensor: torch.Tensor, src: int, stream=None) -> None:  # the Communicator protocol
        dist.broadcast(tensor, src)

    def send(self, state_dict: dict[str, torch.Tensor], bucket_mb: float) -> int:
        return broadcast_buckets(self, state_dict.items(), plan_for(state_dict.items(), bucket_mb), "cpu")

    def receive(self, plans_wire: list[dict]) -> dict[str, torch.Tensor]:
        got: dict[str, torch.Tensor] = {}
        # copy out as vLLM's load_weights does: the receive buffer is reused for the next bucket
        nbytes = receive_buckets(self, [BucketPlan.from_wire(w) for w in plans_wire], "cpu",
                                 lambda pairs: got.update((n, t.clone()) for n, t in pairs))
        got["__bytes__"] = torch.tensor(nbytes)
        return got


@pytest.mark.parametrize("bucket_mb", [1e-4, 1.0])  # many buckets through one reused buffer; one bucket
def test_bucket_broadcast_over_gloo_delivers_every_tensor(ray_cluster, bucket_mb):
    from rlvr.learner.deepspeed_setup import free_port

    sd = tiny_state_dict()
    plans = plan_for(sd.items(), bucket_mb)
    port = free_port()
    peer = ray.remote(GlooPeer).options(num_cpus=0)
    sender, receiver = peer.remote(0, port), peer.remote(1, port)
    try:
        got_ref = receiver.receive.remote([p.to_wire() for p in plans])  # a receive must be posted to finish
        sent = ray.get(sender.send.remote(sd, bucket_mb), timeout=120)
        got = ray.get(got_ref, timeout=120)
    finally:
        ray.kill(sender)
        ray.kill(receiver)
    assert len(plans) > 1 if bucket_mb < 1 else len(plans) == 1
    assert sent == int(got.pop("__bytes__")) == sum(p.nbytes for p in plans)
    assert list(got) == list(sd)
    for name, t in sd.items():
        assert got[name].dtype == t.dtype and torch.equal(got[name], t), name


# ---------------------------------------------------------------------------------------------------------------
# GPU: learner on one GPU broadcasts to a vLLM engine on another (pytest -m gpu tests/test_weight_sync_nccl.py)

needs_two_gpus = pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.device_count() < 2 or importlib.util.find_spec("vllm") is None,
    reason="needs 2 CUDA GPUs and vLLM (the GPU machine; CPU CI has neither)",
)
MODEL = os.environ.get("RLVR_TEST_VLLM_MODEL", "/root/models/smollm2")


@torch.no_grad()
def perturb(learner, scale: float = 0.05) -> None:
    """Runs inside the learner actor: a stand-in for training, every parameter moves by `scale` of its std."""
    g = torch.Generator(device=learner.engine.device).manual_seed(1)
    for p in learner.engine.module.parameters():
        p.add_(torch.randn(p.shape, generator=g, device=p.device) * p.float().std() * scale)


@pytest.mark.gpu
@needs_two_gpus
def test_nccl_sync_makes_vllm_logprobs_match_the_learner(ray_cluster, tmp_path):
    if not os.path.isdir(MODEL):
        pytest.skip(f"no model at {MODEL} (benchmarks/gpu/prepare_models.py writes it)")
    from rlvr.actors.learner_group import LearnerGroup
    from rlvr.actors.rollout_group import RolloutGroup
    from rlvr.launch.cluster import Placement
    from rlvr.model_io import load_tokenizer
    from rlvr.rollout.base import Rollout, SamplingParams

    cfg = tiny_config(MODEL, tmp_path, *SEPARATE_GPUS, "learner.num_actors=1", "rollout.num_actors=1",
                      "model.dtype=bfloat16", "rollout.gpu_memory_utilization=0.3", "rollout.sync_bucket_mb=64",
                      "learner.micro_batch_size=8", "data.prompts_per_step=2", "rollout.samples_per_prompt=4",
                      "rewards.resources.num_cpus=0")
    placement = Placement(cfg)
    rollout = RolloutGroup(cfg, MODEL, placement.scheduling("rollout"))
    learners = LearnerGroup(cfg, MODEL, placement.scheduling("learner"), total_optim_steps=1)
    try:
        learners.setup_weight_broadcast(rollout, cfg.rollout.sync_bucket_mb)
        tok = load_tokenizer(MODEL)
        prompts = [tok.encode(q) for q in ("Tom has 3 apples and buys 4 more.", "The capital of France is")]
        params = SamplingParams(n=4, temperature=1.0, max_new_tokens=32, seed=0)

        def mean_gap() -> float:
            completions = rollout.generate(prompts, params)
            rollouts = [Rollout(prompts[c.prompt_index], c.token_ids, c.logprobs) for c in completions]
            gaps = [abs(a - b) for r, lp in zip(rollouts, learners.completion_logprobs(rollouts))
                    for a, b in zip(r.logprobs, lp)]
            return sum(gaps) / len(gaps)

        ray.get(learners.actors[0].__ray_call__.remote(perturb), timeout=120)
        stale = mean_gap()
        sent = learners.push_weights_nccl()
        synced = mean_gap()
        print(f"mean |logprob gap| vLLM vs learner: stale {stale:.3f}, after NCCL sync {synced:.3f} ({sent} bytes)")
        # bf16 engine vs fp32 learner: ~0.04 with equal weights (docs/benchmarks.md); a 5% perturbation: ~0.4
        assert sent > 0 and stale > 0.2 and synced < 0.1
    finally:
        rollout.shutdown()
        learners.shutdown()
        placement.remove()
