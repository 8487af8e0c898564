"""The one typed schema for a run.

Every section is a pydantic model with bounds; unknown keys are rejected so a misspelt key never silently falls back
to a default. `load_config` turns any problem into a single `ConfigError` line naming the key, before anything starts.

One module per area (base, run, data, rollout, learner, curate), `schema` joins them into `RunConfig`, `load`
reads YAML and overrides; everything is importable from `rlvr.config` as before.
"""

from __future__ import annotations

from rlvr.config.base import ConfigError
from rlvr.config.run import RunSection, RandomInit, ModelSection, ClusterSection, LoggingSection, CheckpointSection, StageSpec, StageEvalSection
from rlvr.config.data import PassRateFilter, CurveSection, FilterSpec, DataSection, LMStageSection, PassRateSection, RFTSection
from rlvr.config.rollout import ResourceSpec, RolloutSection, RewardFunction, RewardHealthSection, RewardsSection
from rlvr.config.learner import AlgorithmSection, LoraSection, TokenSelectionSection, LearnerSection
from rlvr.config.curate import CurateSourceSpec, EvalSetSpec, MinHashSpec, DecontamSpec, CurateSection
from rlvr.config.schema import RunConfig
from rlvr.config.load import parse_overrides, merge, read_preset, format_validation_error, validate, load_config

__all__ = [
    "ConfigError",
    "RunSection",
    "RandomInit",
    "ModelSection",
    "ClusterSection",
    "LoggingSection",
    "CheckpointSection",
    "StageSpec",
    "StageEvalSection",
    "PassRateFilter",
    "CurveSection",
    "FilterSpec",
    "DataSection",
    "LMStageSection",
    "PassRateSection",
    "RFTSection",
    "ResourceSpec",
    "RolloutSection",
    "RewardFunction",
    "RewardHealthSection",
    "RewardsSection",
    "AlgorithmSection",
    "LoraSection",
    "TokenSelectionSection",
    "LearnerSection",
    "CurateSourceSpec",
    "EvalSetSpec",
    "MinHashSpec",
    "DecontamSpec",
    "CurateSection",
    "RunConfig",
    "parse_overrides",
    "merge",
    "read_preset",
    "format_validation_error",
    "validate",
    "load_config",
]
