"""vLLM engine and weight sync: pure pieces on CPU; the engine itself only where a GPU and vLLM exist."""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass, field

import pytest
import torch

from rlvr.rollout.weight_sync import ALIGN, BucketPlan, pack_buckets, plan_buckets, plan_for, unpack_bucket


def tiny_state_dict() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "embed.weight": torch.randn(50, 8, generator=g).to(torch.bfloat16),
        "layer.0.w": torch.randn(8, 8, generator=g),
        "layer.0.b": torch.randn(3, generator=g).to(torch.float16),  # odd byte count: the next slot must realign
        "layer.1.w": torch.randn(8, 8, generator=g).to(torch.bfloat16)[:, ::2],  # non-contiguous source
        "step": torch.tensor([7], dtype=torch.int64),
    }


@pytest.mark.parametrize("bucket_mb", [1e-4, 2e-3, 1.0])
def test_pack_unpack_round_trip_is_exact(bucket_mb):
    sd = tiny_state_dict()
    plans = plan_for(sd.items(), bucket_mb)
    got = {}
    for plan, buf in pack_buckets(sd.items(), plans, "cpu"):
        assert buf.dtype == torch.uint8 and buf.numel() == plan.nbytes
        got.update(unpack_bucket(buf.clone(), plan))
    assert list(got) == list(sd)
    for name, t in sd.items():
        assert got[name].dtype == t.dtype and got[name].shape == t.shape
        assert torch.equal(got[name], t), name


def test_plan_groups_in_order_and_aligns():
    metas = [("a", (100,), torch.float32), ("b", (10,), torch.float16), ("c", (300,), torch.float32),
             ("d", (5,), torch.bfloat16)]
    plans = plan_buckets(metas, bucket_mb=1000 / 2**20)  # 1000 bytes
    assert [[s.name for s in p.specs] for p in plans] == [["a", "b"], ["c"], ["d"]]
    a, b = plans[0].specs
    assert (a.offset, a.nbytes) == (0, 400)
    assert b.offset == 512 and b.offset % ALIGN == 0  # 400 rounded up to the 256-byte alignment
    assert plans[1].specs[0].nbytes == 1200  # larger than a bucket: a bucket of its own
    assert sum(len(p.specs) for p in plans) == len(metas)


def test_plan_survives_the_wire():
    plans = plan_for(tiny_state_dict().items(), 1e-3)
    wire = [p.to_wire() for p in plans]
    # what msgpack does to it: tuples become lists; nothing but str/int/list may appear
    assert all(type(x) in (str, int, list) for w in wire for spec in w["specs"] for x in spec)
    assert [BucketPlan.from_wire(w) for w in wire] == plans


def test_pack_rejects_order_or_shape_mismatch():
    sd = tiny_state_dict()
    plans = plan_for(sd.items(), 1.0)
    with pytest.raises(ValueError, match="plan expects"):
        list(pack_buckets(reversed(list(sd.items())), plans, "cpu"))
    extra = list(sd.items()) + [("extra", torch.zeros(1))]
    with pytest.raises(ValueError, match="more tensors"):
        list(pack_buckets(extra, plans, "cpu"))


def test_pack_into_one_reused_buffer():
    sd = tiny_state_dict()
    plans = plan_for(sd.items(), 1e-4)
    out = torch.empty(max(p.nbytes for p in plans), dtype=torch.uint8)
    for plan, buf in pack_buckets(sd.items(), plans, "cpu", out=out):
        assert buf.data_ptr() == out.data_ptr()
        for name, t in unpack_bucket(buf, plan):
            assert torch.equal(t, sd[name])


@dataclass
class FakeFlatLogprobs:  # the fields of vllm.logprobs.FlatLogprobs that the engine reads
    start_indices: list[int]
    logprobs: list[float] = field(default_factory=list)


def test_sampled_logprobs_takes_the_first_entry_per_position():
    from rlvr.rollout.vllm_engine import sampled_logprobs

    assert sampled_logprobs(FakeFlatLogprobs([0, 1, 2], [-0.1, -0.2, -0.3]), 3) == [-0.1, -0.2, -0.3]
    # with top-k entries too, the sampled token leads each position
    assert sampled_logprobs(FakeFlatLogprobs([0, 2], [-0.5, -0.1, -0.7, -0.2]), 2) == [-0.5, -0.7]
    with pytest.raises(RuntimeError, match="positions"):
        sampled_logprobs(FakeFlatLogprobs([0], [-0.5]), 2)


def test_modules_import_without_vllm():
    # CPU installs have no vLLM: importing the engine and the extension must not need it
    import rlvr.rollout.vllm_engine  # noqa: F401
    import rlvr.rollout.vllm_worker_ext  # noqa: F401


@pytest.mark.parametrize("kv_cache_gb, expected", [(None, None), (1.5, int(1.5 * 2**30))])
def test_kv_cache_gb_reaches_vllm_as_bytes(monkeypatch, kv_cache_gb, expected):
    # vLLM does not run on CPU: a stand-in module records what VLLMEngine hands to vllm.LLM. A fixed KV cache is
    # what lets several engines start together on one GPU (vLLM's profiling run is skipped), so it must arrive.
    import types

    from rlvr.config import RolloutSection
    from rlvr.rollout.vllm_engine import VLLMEngine

    seen = {}

    class LLM:
        def __init__(self, **kwargs):
            seen.update(kwargs)

        def get_tokenizer(self):
            return None

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM))
    VLLMEngine("model-dir", RolloutSection(engine="vllm", kv_cache_gb=kv_cache_gb), 0)
    assert seen["model"] == "model-dir" and seen.get("kv_cache_memory_bytes") == expected


@pytest.mark.parametrize("preset", ["gpu_smollm2_grpo_bench", "gpu_smollm2_gsm8k_sft", "gpu_smollm2_gsm8k_grpo",
                                    "gpu_smollm2_gsm8k_format_grpo"])
def test_gpu_presets_load(preset):
    # the GPU presets run only on the lent machine: a typo must still fail here, not after a device start
    from pathlib import Path

    from rlvr.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / f"{preset}.yaml")
    if cfg.stages:
        from rlvr.launch.pipeline import plan

        assert [s.kind for s in plan(cfg)] == ["sft"]
    else:
        assert cfg.rollout.engine == "vllm" and cfg.rollout.weight_sync == "cuda_ipc"
        assert cfg.rollout.colocate != cfg.rollout.overlap  # asleep during updates, or overlapped with them
        assert cfg.learner.resources.num_gpus + cfg.rollout.resources.num_gpus <= 1  # both share one GPU


# ---------------------------------------------------------------------------------------------------------------
# GPU: a real vLLM engine (run on the GPU machine: pytest -m gpu tests/test_vllm_engine.py)

needs_gpu = pytest.mark.skipif(
    not torch.cuda.is_available() or importlib.util.find_spec("vllm") is None,
    reason="needs a CUDA GPU and vLLM (the GPU machine; CPU CI has neither)",
)
MODEL = os.environ.get("RLVR_TEST_VLLM_MODEL", "/root/models/smollm2")


@pytest.fixture(scope="module")
def engine():
    if not os.path.isdir(MODEL):
        pytest.skip(f"no model at {MODEL} (benchmarks/gpu/prepare_models.py writes it)")
    from rlvr.config import RolloutSection
    from rlvr.rollout.vllm_engine import VLLMEngine

    # `needs_gpu` called torch.cuda.is_available() in this process, which poisons fork for CUDA; vLLM still picks
    # fork (torch.cuda.is_initialized() is False) and its engine core then died with "Cannot re-initialize CUDA in
    # forked subprocess" (H100, 2026-11-22). Spawn starts it clean.
    os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
    return VLLMEngine(MODEL, RolloutSection(engine="vllm", gpu_memory_utilization=0.25), 0, enable_sleep_mode=True)


@pytest.mark.gpu
@needs_gpu
def test_generate_groups_n_per_prompt_with_logprobs(engine):
    from rlvr.rollout.base import SamplingParams

    prompts = [engine.tokenizer.encode("1, 2, 3, 4,"), engine.tokenizer.encode("The capital of France is")]
    out = engine.generate(prompts, SamplingParams(n=3, temperature=0.8, max_new_tokens=16))
    assert [c.prompt_index for c in out] == [0, 0, 0, 1, 1, 1]
    for c in out:
        assert 0 < len(c.token_ids) == len(c.logprobs) <= 16
        assert all(lp <= 0 for lp in c.logprobs)
        assert c.text == engine.tokenizer.decode(c.token_ids, skip_special_tokens=True)


@pytest.mark.gpu
@needs_gpu
def test_stop_strings_end_the_completion(engine):
    from rlvr.rollout.base import SamplingParams

    prompt = engine.tokenizer.encode("Count: 1, 2, 3, 4, 5, 6, 7, 8,")
    out = engine.generate([prompt], SamplingParams(n=4, temperature=0.1, max_new_tokens=32, stop=(",",)))
    for c in out:
        assert "," not in c.text
        assert c.finish_reason == "stop" or len(c.token_ids) == 32


@pytest.mark.gpu
@needs_gpu
def test_sleep_wake_and_ipc_sync_restore_the_weights(engine):
    from transformers import AutoModelForCausalLM

    from rlvr.rollout.base import SamplingParams
    from rlvr.rollout.weight_sync import plan_for, send_ipc

    model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.bfloat16).cuda()
    prompt = [engine.tokenizer.encode("The capital of France is")]
    greedy = SamplingParams(temperature=0.0, max_new_tokens=12)
    before = engine.generate(prompt, greedy)[0].token_ids
    engine.sleep(level=2)  # drops the weights: only a complete sync brings them back
    engine.wake_up(["weights"])
    named = [(n, p.detach()) for n, p in model.named_parameters()]
    send_ipc(named, plan_for(named, 16), engine.load_ipc_bucket)
    engine.wake_up(["kv_cache"])
    assert engine.generate(prompt, greedy)[0].token_ids == before
