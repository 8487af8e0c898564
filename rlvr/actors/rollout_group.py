"""The rollout workers as one engine: prompts are split across workers and completions gathered in order.

A worker that dies (killed, out of memory, node lost) is created again in its own placement bundle, given the
newest weights, and its shard is generated again. Its sampling seed depends only on (step, worker index), so the
redone shard is exactly what the dead worker would have returned: the step is neither lost nor changed.
"""

from __future__ import annotations

import dataclasses
import logging

import ray

from rlvr.actors.calls import ActorDied, gather, outcomes
from rlvr.config import RunConfig
from rlvr.rollout.base import Completion, SamplingParams, derive_seed
from rlvr.rollout.weight_sync import broadcast_ranks
from rlvr.rollout.worker import RolloutWorker
from rlvr.utils.batching import shard

log = logging.getLogger("rlvr")


def worker_seeds(seed: int | None, num_workers: int) -> list[int | None]:
    """Each worker's own seed so workers do not draw the same samples. A hash of (seed, worker): `seed + i` handed
    worker 1 the seed the loop gives worker 0 at the next refill draw (seed + 1)."""
    return [None if seed is None else derive_seed(seed, i) for i in range(num_workers)]


class RolloutGroup:
    def __init__(self, cfg: RunConfig, model_path: str, scheduling: list[dict], max_restarts_per_call: int = 2):
        self.cfg, self.model_path, self.scheduling = cfg, model_path, scheduling
        self.timeout = cfg.cluster.actor_timeout_s
        self.max_restarts_per_call = max_restarts_per_call
        self._remote = ray.remote(RolloutWorker)
        n = cfg.rollout.num_actors
        self.names = [f"rollout worker {i}" for i in range(n)]
        self.generation = [0] * n
        self.actors = [self._create(i) for i in range(n)]
        self._weights_ref = None  # the newest weights, for workers created after a death
        self._adapter_ref = None  # learner.lora.sync=adapter: the newest adapter, applied after those weights
        self.restarts = 0
        gather([a.ping.remote() for a in self.actors], self.names, self.timeout, "start")

    def _create(self, i: int):
        options = dict(self.scheduling[i])
        if options.get("name"):  # a dead actor's name may not be released yet: the new one gets its own
            options["name"] += f"-r{self.generation[i]}" if self.generation[i] else ""
        return self._remote.options(**options).remote(self.cfg, self.model_path, i)

    def _restart(self, i: int, cause: str) -> None:
        if self.cfg.rollout.weight_sync != "object_store":
            # weights pushed by CUDA IPC or NCCL never pass through the driver: a new worker could only start from
            # the initial model, which would silently train on stale samples (and, with NCCL, it would be outside
            # the broadcast group, formed once per run); stop instead (resume restores them)
            raise ActorDied(f"{self.names[i]} died during {cause}; with rollout.weight_sync="
                            f"{self.cfg.rollout.weight_sync} it cannot be restarted with current weights", self.names[i])
        self.generation[i] += 1
        self.restarts += 1
        log.warning("%s died during %s; creating it again (restart %d)", self.names[i], cause, self.restarts)
        print(f"[rlvr] {self.names[i]} died during {cause}; restarted it and redoing its work", flush=True)
        self.actors[i] = self._create(i)
        if self._weights_ref is not None:
            gather([self.actors[i].load_weights.remote(self._weights_ref)], self.names[i:i + 1], self.timeout,
                   "loading weights after a restart")
        if self._adapter_ref is not None:
            gather([self.actors[i].load_adapter.remote(self._adapter_ref)], self.names[i:i + 1], self.timeout,
                   "loading the adapter after a restart")

    def _call_all(self, what: str, submit) -> list:
        """`submit(i, actor)` on every worker; a worker that dies is restarted and its call submitted again."""
        results: list = [None] * len(self.actors)
        todo, tries = list(range(len(self.actors))), 0
        while todo:
            refs = [submit(i, self.actors[i]) for i in todo]
            redo = []
            for i, out in zip(todo, outcomes(refs, [self.names[i] for i in todo], self.timeout, what)):
                if isinstance(out, ActorDied):
                    redo.append(i)
                else:
                    results[i] = out
            if redo and tries >= self.max_restarts_per_call:
                raise ActorDied(f"{self.names[redo[0]]} died {tries + 1} times during one {what}", self.names[redo[0]])
            for i in redo:
                self._restart(i, what)
            todo, tries = redo, tries + 1
        return results

    def generate(self, prompt_ids: list[list[int]], params: SamplingParams) -> list[Completion]:
        parts = shard(prompt_ids, len(self.actors))

        seeds = worker_seeds(params.seed, len(self.actors))

        def submit(i, actor):
            return actor.generate.remote(parts[i], dataclasses.replace(params, seed=seeds[i]))

        results, offset = [], 0
        for part, completions in zip(parts, self._call_all("generate", submit)):
            for c in completions:
                c.prompt_index += offset
            results.extend(completions)
            offset += len(part)
        return results

    def load_weights(self, weights_ref: ray.ObjectRef) -> None:
        self._weights_ref = weights_ref
        self._call_all("load_weights", lambda i, actor: actor.load_weights.remote(weights_ref))

    def load_adapter(self, adapter_ref: ray.ObjectRef) -> None:
        """learner.lora.sync=adapter: every worker applies the adapter to the base weights it holds."""
        self._adapter_ref = adapter_ref
        self._call_all("load_adapter", lambda i, actor: actor.load_adapter.remote(adapter_ref))

    def sleep(self, level: int) -> None:
        """Colocated vLLM: free the GPU for the learners."""
        self._call_all("sleep", lambda i, actor: actor.sleep.remote(level))

    def wake_up(self, tags: list[str] | None = None) -> None:
        self._call_all("wake_up", lambda i, actor: actor.wake_up.remote(tags))

    # -- weight transports that bypass the driver (rlvr/trainer/weight_sync.py): the engine side of each, as
    # plain callables the learner's sender runs in its own process

    def ipc_delivery(self) -> IpcDelivery:
        return IpcDelivery(self.actors, self.names, self.timeout)

    def nccl_receiver(self) -> NcclReceiver:
        return NcclReceiver(self.actors, self.names, self.timeout)

    def broadcast_world_size(self) -> int:
        return broadcast_ranks([self.cfg.rollout.tensor_parallel_size] * len(self.actors))[0]

    def start_nccl_join(self, host: str, port: int) -> tuple[list, list[str]]:
        """Every engine starts joining the NCCL group (learner rank 0 is rank 0); (pending calls, their names).
        The joins finish only once the learner has joined too: the caller waits for all together."""
        world, offsets = broadcast_ranks([self.cfg.rollout.tensor_parallel_size] * len(self.actors))
        refs = [a.init_nccl.remote(host, port, offset, world) for a, offset in zip(self.actors, offsets)]
        return refs, list(self.names)

    def shutdown(self) -> None:
        for a in self.actors:
            ray.kill(a)


class IpcDelivery:
    """Runs in learner rank 0: every engine maps the bucket by CUDA IPC; returns once all have loaded it (the
    buffer is reused next)."""

    def __init__(self, actors: list, names: list[str], timeout: float):
        self.actors, self.names, self.timeout = actors, names, timeout

    def __call__(self, plan_wire: dict, handles: bytes) -> None:
        gather([a.load_ipc_bucket.remote(plan_wire, handles) for a in self.actors], self.names, self.timeout,
               "loading a weight bucket by CUDA IPC")


class NcclReceiver:
    """Runs in learner rank 0: starts every engine's receive of the broadcast; returns the wait for them."""

    def __init__(self, actors: list, names: list[str], timeout: float):
        self.actors, self.names, self.timeout = actors, names, timeout

    def __call__(self, plans_wire: list[dict]):
        refs = [a.receive_nccl.remote(plans_wire) for a in self.actors]
        return lambda: gather(refs, self.names, self.timeout, "receiving the weight broadcast")
