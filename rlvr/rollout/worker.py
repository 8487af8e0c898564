"""A rollout worker: one engine, built from the config, behind the calls the controller makes."""

from __future__ import annotations

import torch

from rlvr.config import RunConfig
from rlvr.rollout.base import Completion, SamplingParams


def build_engine(cfg: RunConfig, model_path: str, seed: int):
    if cfg.rollout.engine == "vllm":
        from rlvr.rollout.vllm_engine import VLLMEngine  # lazy: CPU installs have no vLLM

        r = cfg.rollout
        lora = cfg.learner.lora
        return VLLMEngine(model_path, r, seed, dtype=cfg.model.dtype, enable_sleep_mode=r.colocate,
                          bucket_mb=r.sync_bucket_mb, max_model_len=r.max_model_len, ignore_eos=r.ignore_eos,
                          lora_rank=lora.r if lora is not None and lora.sync == "adapter" else None,
                          **vllm_engine_options(r))
    from rlvr.rollout.hf_engine import HFEngine

    return HFEngine.from_path(model_path, cfg.rollout, dtype=cfg.model.dtype)


def vllm_engine_options(r) -> dict:
    """The rollout section's large-batch engine settings that are set, as vllm.LLM keyword arguments."""
    opts = {k: getattr(r, k) for k in ("max_num_seqs", "max_num_batched_tokens", "enable_prefix_caching",
                                       "async_scheduling") if getattr(r, k) is not None}
    if r.cudagraph_capture_sizes is not None:
        opts["compilation_config"] = {"cudagraph_capture_sizes": sorted(r.cudagraph_capture_sizes)}
    if r.tensor_parallel_size > 1:
        # inside a placement group vLLM would pick its Ray executor and ask for GPU bundles this actor already
        # holds (pending forever); its TP workers are our child processes instead, on the actor's GPUs, which is
        # also where load_weights stages the IPC copies (cuda:0..TP-1)
        opts["distributed_executor_backend"] = "mp"
    return opts


class RolloutWorker:
    def __init__(self, cfg: RunConfig, model_path: str, index: int):
        torch.manual_seed(cfg.run.seed + 1000 * (index + 1))
        self.engine = build_engine(cfg, model_path, cfg.run.seed + index)

    def generate(self, prompt_ids: list[list[int]], params: SamplingParams) -> list[Completion]:
        return self.engine.generate(prompt_ids, params)

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        self.engine.load_weights(state_dict)

    def load_adapter(self, adapter) -> None:
        """learner.lora.sync=adapter: a `rlvr.learner.lora.AdapterWeights`, applied on top of the base weights."""
        self.engine.load_adapter(adapter)

    # vLLM only: colocated sleep/wake and CUDA IPC weight loading (see rlvr/rollout/vllm_engine.py)
    def sleep(self, level: int) -> None:
        self.engine.sleep(level)

    def wake_up(self, tags: list[str] | None = None) -> None:
        self.engine.wake_up(tags)

    def load_ipc_bucket(self, plan_wire: dict, handles: bytes) -> None:
        self.engine.load_ipc_bucket(plan_wire, handles)

    # vLLM on GPUs of its own: learner rank 0 broadcasts by NCCL (rollout.weight_sync.NcclSender drives both ends)
    def init_nccl(self, host: str, port: int, rank_offset: int, world_size: int) -> None:
        self.engine.init_nccl(host, port, rank_offset, world_size)

    def receive_nccl(self, plans_wire: list[dict]) -> None:
        self.engine.receive_nccl(plans_wire)

    def ping(self) -> bool:
        return True
