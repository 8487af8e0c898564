"""The update: the RL algorithm and loss, and the learner ranks (DeepSpeed, LoRA, token selection)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rlvr.config.base import _Section
from rlvr.config.rollout import ResourceSpec


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
    refill_prompts: int | None = Field(None, ge=1)
    """Prompts per refill draw (None: data.prompts_per_step). Where few groups have mixed rewards (a quarter at
    GSM8K on a 135M model) several small draws run one after another, each as long as the longest completion;
    one large draw samples the same prompts in a single batch."""
    preflight_prompts: int = Field(0, ge=0)
    """Before training, sample G completions for this many training prompts and report pass@G and the share of
    groups with mixed rewards (0: skip)."""
    reward_control: Literal["none", "shuffle", "random"] = "none"
    """A control arm: train on rewards that carry no information about the completion. shuffle: the batch's
    rewards permuted across all its samples; random: each reward drawn from the batch's rewards with replacement.
    Both keep the batch's reward mean (shuffle exactly, random in expectation); metrics keep the true rewards."""

    @model_validator(mode="after")
    def _refill_needs_the_filter(self) -> AlgorithmSection:
        if self.refill_prompts is not None and not self.drop_zero_variance_groups:
            raise ValueError("algorithm.refill_prompts sizes the refill draws of drop_zero_variance_groups, which is "
                             "off: set algorithm.drop_zero_variance_groups=true or remove refill_prompts")
        return self

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
    compile: bool = False
    """torch.compile each decoder layer of the trained model (rlvr/learner/compiled.py): elementwise work fused
    into fewer kernels. The first updates pay the compilation."""

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
    def _compile_without_checkpointing(self) -> LearnerSection:
        if self.compile and self.gradient_checkpointing:
            # torch.utils.checkpoint runs its function with torch.compile off: the layers would stay eager unseen
            raise ValueError("learner.compile does not work with learner.gradient_checkpointing (checkpointed layers "
                             "run uncompiled): turn one of them off")
        return self

    @model_validator(mode="after")
    def _lora_fits(self) -> LearnerSection:
        if self.lora is None:
            return self
        if self.zero_stage == 3:
            # merged sync and exports read each base weight whole; with adapters this small, ZeRO-3 buys nothing
            raise ValueError("learner.lora needs learner.zero_stage <= 2 (the adapters are small; the frozen base "
                             "is not sharded)")
        if self.lora.quantize == "nf4" and self.precision != "bf16":
            raise ValueError(f"learner.lora.quantize=nf4 trains bf16 adapters: set learner.precision=bf16 "
                             f"(got {self.precision})")
        return self
