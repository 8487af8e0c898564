"""`RunConfig`: every section together, and the checks that need more than one section."""

from __future__ import annotations

from pydantic import Field, model_validator

from rlvr.config.base import _Section
from rlvr.config.curate import CurateSection
from rlvr.config.data import CurveSection, DataSection, LMStageSection, PassRateSection, RFTSection
from rlvr.config.learner import AlgorithmSection, LearnerSection
from rlvr.config.rollout import RolloutSection, RewardsSection
from rlvr.config.run import RunSection, ModelSection, ClusterSection, LoggingSection, CheckpointSection, StageSpec, StageEvalSection


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
