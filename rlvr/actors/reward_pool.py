"""The reward workers as one scorer: `cfg.num_workers` Ray actors of the plain `RewardService`, sized and placed on
their own (rewards.resources or explicit scheduling), independent of rollout and learner.

A batch is split into contiguous shards, one per actor, and gathered in order. Every wait has a deadline that names
the actor. An actor that dies (killed, node lost) is created again with the same options and its shard redone; the
service inside it already turns stuck or crashing checks into verdicts, so a dead actor is an infrastructure event.
"""

from __future__ import annotations

import logging
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError

from rlvr.actors.calls import ActorDied, gather, outcomes
from rlvr.config import RewardsSection
from rlvr.rewards.service import RewardService
from rlvr.rewards.types import RewardResult, Sample
from rlvr.utils.batching import shard

log = logging.getLogger(__name__)

_START_SLACK_S = 120.0
"""Added to every wait: an actor (re)start, its worker process's imports, a worker replaced after a kill."""


def default_options(cfg: RewardsSection) -> dict[str, Any]:
    spec = cfg.resources
    return {"num_cpus": spec.num_cpus, "num_gpus": spec.num_gpus, "resources": dict(spec.resources)}


class RewardPool:
    def __init__(
        self,
        cfg: RewardsSection,
        scheduling: list[dict] | None = None,
        *,
        service_kwargs: dict[str, Any] | None = None,
        max_shard_retries: int = 2,
    ):
        """`scheduling[i]`: Ray options for actor i (placement group strategy, num_cpus...); None: cfg.resources.
        `service_kwargs`: extra `RewardService` arguments (stop, max_completion_chars...)."""
        if scheduling is not None and len(scheduling) != cfg.num_workers:
            raise ValueError(f"scheduling has {len(scheduling)} entries for {cfg.num_workers} reward workers")
        self.cfg = cfg
        self._remote = ray.remote(RewardService)
        self._options = [
            {**(scheduling[i] if scheduling else default_options(cfg)), "max_restarts": 0}
            for i in range(cfg.num_workers)
        ]
        self._service_kwargs = service_kwargs or {}
        self._max_shard_retries = max_shard_retries
        self.names = [f"reward worker {i}" for i in range(cfg.num_workers)]
        self.actors = [self._create(i) for i in range(cfg.num_workers)]
        self.recreated = 0
        """Actors created again after dying."""

    def _create(self, i: int) -> Any:
        return self._remote.options(**self._options[i]).remote(self.cfg, **self._service_kwargs)

    def wait_s(self, num_samples: int) -> float:
        """How long a shard may take: every sample at the hard limit, plus start-up slack."""
        return _START_SLACK_S + num_samples * self.cfg.timeout_s

    def score(self, samples: list[Sample]) -> list[RewardResult]:
        shards = shard(samples, len(self.actors))
        refs = [self.actors[i].score.remote(part) if part else None for i, part in enumerate(shards)]
        results: list[RewardResult] = []
        for i, (part, ref) in enumerate(zip(shards, refs)):
            if part:
                results.extend(self._gather_shard(i, part, ref))
        return results

    def _gather_shard(self, i: int, part: list[Sample], ref: Any) -> list[RewardResult]:
        # Shards run in parallel; each wait is bounded on its own, so a slow early shard never shortens a later
        # shard's allowance.
        deaths = 0
        while True:
            result = outcomes([ref], self.names[i : i + 1], self.wait_s(len(part)), f"score of {len(part)} samples")[0]
            if not isinstance(result, ActorDied):
                return result
            deaths += 1
            if deaths > self._max_shard_retries:
                raise RuntimeError(f"{self.names[i]} died {deaths} times on the same shard") from result
            log.warning("%s died (%s); creating it again and redoing its %d samples", self.names[i],
                        type(result.__cause__).__name__, len(part))
            self.actors[i] = self._create(i)
            self.recreated += 1
            ref = self.actors[i].score.remote(part)

    def worker_pids(self) -> list[int]:
        """The scoring process of each actor (for health checks and tests)."""
        return gather([a.worker_pid.remote() for a in self.actors], self.names, _START_SLACK_S, "worker_pid")

    def close(self) -> None:
        for actor in self.actors:
            try:
                ray.get(actor.close.remote(), timeout=30)
            except (RayActorError, GetTimeoutError):
                pass  # already dead, or stuck: the kill below ends it and its worker (PDEATHSIG)
            ray.kill(actor)
        self.actors = []
