"""The rollout workers as one engine: prompts are split across workers and completions gathered in order."""

from __future__ import annotations

import dataclasses

import ray

from rlvr.actors.calls import gather
from rlvr.config import RunConfig
from rlvr.rollout.base import Completion, SamplingParams
from rlvr.rollout.worker import RolloutWorker
from rlvr.trainer.batch import shard


class RolloutGroup:
    def __init__(self, cfg: RunConfig, model_path: str, scheduling: list[dict]):
        self.timeout = cfg.cluster.actor_timeout_s
        remote = ray.remote(RolloutWorker)
        n = cfg.rollout.num_actors
        self.actors = [remote.options(**scheduling[i]).remote(cfg, model_path, i) for i in range(n)]
        self.names = [f"rollout worker {i}" for i in range(n)]
        gather([a.ping.remote() for a in self.actors], self.names, self.timeout)

    def generate(self, prompt_ids: list[list[int]], params: SamplingParams) -> list[Completion]:
        parts = shard(prompt_ids, len(self.actors))
        # each worker gets its own seed so workers do not draw the same samples
        refs = [
            a.generate.remote(p, dataclasses.replace(params, seed=None if params.seed is None else params.seed + i))
            for i, (a, p) in enumerate(zip(self.actors, parts))
        ]
        results, offset = [], 0
        for part, completions in zip(parts, gather(refs, self.names, self.timeout)):
            for c in completions:
                c.prompt_index += offset
            results.extend(completions)
            offset += len(part)
        return results

    def load_weights(self, weights_ref: ray.ObjectRef) -> None:
        gather([a.load_weights.remote(weights_ref) for a in self.actors], self.names, self.timeout)

    def shutdown(self) -> None:
        for a in self.actors:
            ray.kill(a)
