"""What a run trains on: prompts and their filters, LM-stage corpora, pass-rate maps, the rft stage."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rlvr.config.base import _Section


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
    refresh: bool = False
    """GRPO: each sampled group re-measures its prompt's pass rate under the current policy; a prompt whose last
    refresh_patience groups fell outside the band is no longer drawn, and OUTPUT_DIR/passrate_refreshed.jsonl holds
    the refreshed map (rlvr.data.passrate_refresh)."""
    refresh_patience: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _band_not_empty(self) -> PassRateFilter:
        if self.above >= self.below:
            raise ValueError(f"passrate_filter.above ({self.above}) must be below passrate_filter.below ({self.below})")
        return self


class OnlineBand(_Section):
    """GRPO without a map: every prompt is drawn until its own sampled groups measured it outside the band
    `patience` times in a row (it was always solved, or never). passrate_filter.refresh's online form: a second
    epoch then draws mostly the prompts that carried signal in the first. The measurements are written to
    OUTPUT_DIR/passrate_refreshed.jsonl, a pass-rate map for the next run (rlvr.data.passrate_refresh)."""

    above: float = Field(0.0, ge=-1.0, le=1.0)
    """Drop a prompt once measured at pass_rate <= above (or >= below) `patience` times in a row."""
    below: float = Field(1.0, ge=0.0, le=2.0)
    patience: int = Field(1, ge=1)
    """1: one all-wrong (or all-right) group drops the prompt; a prompt never solved in G samples may still be
    solvable later, so a larger value keeps more of them at the cost of more samples."""
    signal_patience: int | None = Field(None, ge=1)
    """The same count for a prompt that has had a group in the band (None: `patience`). At a pass rate of 1/16 a
    group of 16 is all wrong 36% of the time, so with patience 1 the prompts with signal leave by chance within a few
    epochs and the band empties; 3 keeps them while a first all-wrong group still drops the never-solved ones."""

    @model_validator(mode="after")
    def _band_not_empty(self) -> OnlineBand:
        if self.above >= self.below:
            raise ValueError(f"online_band.above ({self.above}) must be below online_band.below ({self.below})")
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
    online_band: OnlineBand | None = None
    """GRPO: stop drawing the prompts the run's own groups measured outside a pass-rate band (no map needed)."""
    filters: list[FilterSpec] = Field(default_factory=list)
    """Record filters applied, in order, to every stage's data (prompts, pretraining text, SFT chats, the held-out
    set); a pipeline stage can override them in its `overrides`."""

    @model_validator(mode="after")
    def _path_needed(self) -> DataSection:
        if self.source in ("gsm8k", "jsonl") and not self.path:
            raise ValueError(f"data.path is required for data.source={self.source!r}")
        return self

    @model_validator(mode="after")
    def _one_refreshing_band(self) -> DataSection:
        if self.online_band is not None and self.passrate_filter is not None and self.passrate_filter.refresh:
            raise ValueError("data.online_band and data.passrate_filter.refresh both drop prompts by the run's own "
                             "measurements: keep one (refresh for a band from a map, online_band without a map)")
        return self


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
