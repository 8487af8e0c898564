"""Generation and scoring: rollout workers (engines, sampling, weight sync) and the reward service."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from rlvr.config.base import _Section


class ResourceSpec(_Section):
    num_cpus: float = Field(1.0, ge=0)
    num_gpus: float = Field(0.0, ge=0)
    resources: dict[str, float] = Field(default_factory=dict)
    """Custom Ray resources, e.g. {"cpu_node": 1} to pin reward workers to CPU nodes."""


class RolloutSection(_Section):
    engine: Literal["hf", "vllm"] = "hf"
    num_actors: int = Field(2, ge=1)
    samples_per_prompt: int = Field(4, ge=1)
    """G: completions per prompt, the group that advantages are normalised over."""
    temperature: float = Field(1.0, gt=0, le=2.0)
    top_p: float = Field(1.0, gt=0, le=1.0)
    max_new_tokens: int = Field(32, ge=1)
    stop: list[str] = Field(default_factory=list)
    """Stop strings: completions are cut after the first one."""
    batch_size: int = Field(64, ge=1)
    """HF engine: sequences generated together in one forward pass."""
    tensor_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float = Field(0.5, gt=0, le=1.0)
    max_model_len: int | None = Field(None, ge=16)
    kv_cache_gb: float | None = Field(None, gt=0)
    """vLLM: a fixed KV cache size instead of what is left of gpu_memory_utilization after a profiling run. That
    run assumes no other process changes its GPU memory meanwhile, which fails at random when several engines
    (or a learner) start together on one GPU; a fixed size skips it. gpu_memory_utilization still must be free
    at start-up."""
    weight_sync: Literal["object_store", "cuda_ipc", "nccl"] = "object_store"
    """object_store: learner rank 0's weights go through Ray's object store (any engine, any node);
    cuda_ipc: rank 0 packs bf16 buckets on its GPU and vLLM maps them by CUDA IPC (same GPU(s), no host copy);
    nccl: rank 0 broadcasts bf16 buckets over NCCL to every vLLM worker (learners and engines on separate GPUs,
    any node; ZeRO-3 parameters are gathered one at a time)."""
    colocate: bool = False
    """vLLM shares the learners' GPU: it sleeps (frees its memory) while the learners train and wakes to sync."""
    sleep_level: Literal[1, 2] = 2
    """vLLM sleep level when colocated: 2 drops the weights too (a full sync follows anyway)."""
    sync_bucket_mb: float = Field(256.0, gt=0)
    overlap: bool = False
    """Generate step k+1's batch while the learners train on step k's (one step off-policy). The engines then
    sample with weights one update old; the learner uses their logprobs as the old policy's in the clipped
    ratio, so the update stays an importance-weighted one. Needs the engines awake while the learners train:
    not with colocate (vLLM can still share the learners' GPU through fractional num_gpus)."""
    overlap_old_logprobs: Literal["engine", "learner"] = "engine"
    """With overlap, where the old (sampling) policy's logprobs come from. engine: the rollout engine returns the
    sampled tokens' logprobs (vLLM alone on an H100: +23% rollout time for SmolLM2). learner: each learner keeps a
    copy of its weights from before its last update and recomputes them with one extra forward pass (the copy is
    saved with checkpoints; not with ZeRO-3, whose ranks hold only a shard of the weights). On one H100 shared by
    vLLM and the learner, learner was the slower of the two (1.15 vs 1.08 s per step, docs/benchmarks.md)."""
    ignore_eos: bool = False
    """vLLM: every completion runs to max_new_tokens (throughput benchmarks, where the work must not depend on
    the weights; both sides of benchmarks/gpu/bench_grpo_matrix.py's W3 force the length)."""
    max_num_seqs: int | None = Field(None, ge=1)
    """vLLM engine settings for large batches (None: vLLM's default): sequences decoded together,"""
    max_num_batched_tokens: int | None = Field(None, ge=16)
    """tokens per engine step (prefill chunks),"""
    enable_prefix_caching: bool | None = None
    """reuse of a group's shared prompt KV cache,"""
    async_scheduling: bool | None = None
    """scheduling the next step while the GPU runs the current one,"""
    cudagraph_capture_sizes: list[int] | None = None
    """and the batch sizes CUDA graphs are captured for (fewer: faster start)."""
    resources: ResourceSpec = Field(default_factory=ResourceSpec)

    @model_validator(mode="after")
    def _vllm_only(self) -> RolloutSection:
        if self.engine != "vllm" and self.weight_sync != "object_store":
            raise ValueError(f"rollout.weight_sync={self.weight_sync} needs rollout.engine=vllm")
        if self.engine != "vllm" and self.colocate:
            raise ValueError("rollout.colocate needs rollout.engine=vllm")
        return self

    @model_validator(mode="after")
    def _tensor_parallel_gpus(self) -> RolloutSection:
        tp = self.tensor_parallel_size
        if tp > 1 and self.engine != "vllm":
            raise ValueError(f"rollout.tensor_parallel_size={tp} needs rollout.engine=vllm")
        # an engine's TP workers are child processes of its rollout actor, one per GPU Ray gave that actor
        if tp > 1 and self.resources.num_gpus != tp:
            raise ValueError(f"rollout.tensor_parallel_size={tp} runs each engine on {tp} GPUs of one node: set "
                             f"rollout.resources.num_gpus={tp} (got {self.resources.num_gpus:g}; TP engines do "
                             "not share GPUs)")
        return self

    @model_validator(mode="after")
    def _modes_compatible(self) -> RolloutSection:
        if self.overlap and self.colocate:
            raise ValueError("rollout.overlap needs the rollout engines awake while the learners train, and "
                             "rollout.colocate puts vLLM to sleep then: set one of them to false (to share a GPU "
                             "without sleeping, give both roles fractional resources.num_gpus)")
        if self.weight_sync == "nccl" and self.colocate:
            # NCCL refuses two ranks of one communicator on the same GPU
            raise ValueError("rollout.weight_sync=nccl needs the learners and vLLM on separate GPUs, but "
                             "rollout.colocate=true shares one: use rollout.weight_sync=cuda_ipc when sharing a GPU")
        return self


class RewardFunction(_Section):
    path: str
    """Dotted path `package.module:function`."""
    weight: float = 1.0
    kwargs: dict[str, Any] = Field(default_factory=dict)


class RewardHealthSection(_Section):
    enabled: bool = True
    """Stop the run when a reward function keeps failing (off: train on whatever it returns)."""
    max_failure_share: float = Field(0.5, ge=0, le=1)
    """A function fails a step when more than this share of the step's samples got `error` or `timeout` from it."""
    steps: int = Field(3, ge=1)
    """Failed steps in a row after which the run stops, naming the function and its first error."""


class RewardsSection(_Section):
    functions: list[RewardFunction] = Field(
        default_factory=lambda: [RewardFunction(path="rlvr.rewards.math:math_reward")], min_length=1
    )
    num_workers: int = Field(1, ge=1)
    timeout_s: float = Field(5.0, gt=0, le=600)
    processes: int = Field(4, ge=1, le=64)
    """Checker processes per reward worker: up to this many checks that hang time out together, not one by one.
    Started when checks are slow (one runs fast batches); each is a Python process of about 100 MB."""
    health: RewardHealthSection = Field(default_factory=RewardHealthSection)
    resources: ResourceSpec = Field(default_factory=ResourceSpec)
