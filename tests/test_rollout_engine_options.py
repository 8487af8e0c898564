"""The rollout section's large-batch vLLM settings reach vllm.LLM's keyword arguments only when set."""

from __future__ import annotations

from rlvr.config import load_config
from rlvr.rollout.worker import vllm_engine_options


def test_only_set_engine_options_are_passed():
    base = ["model.path=smollm2", "rollout.engine=vllm"]
    assert vllm_engine_options(load_config(None, base).rollout) == {}  # vLLM's own defaults
    cfg = load_config(None, [*base, "rollout.max_num_seqs=512", "rollout.max_num_batched_tokens=16384",
                             "rollout.enable_prefix_caching=true", "rollout.async_scheduling=false",
                             "rollout.cudagraph_capture_sizes=[512, 1, 64]"])
    assert vllm_engine_options(cfg.rollout) == {
        "max_num_seqs": 512, "max_num_batched_tokens": 16384, "enable_prefix_caching": True,
        "async_scheduling": False, "compilation_config": {"cudagraph_capture_sizes": [1, 64, 512]}}
