"""The data-parallel learner ranks as one object the controller calls like a local learner."""

from __future__ import annotations

import ray

from rlvr.actors.calls import gather
from rlvr.config import RunConfig
from rlvr.rollout.base import Rollout
from rlvr.rollout.weight_sync import broadcast_ranks
from rlvr.trainer.batch import shard_minibatches
from rlvr.trainer.learner import Learner


class LearnerGroup:
    def __init__(self, cfg: RunConfig, model_path: str, scheduling: list[dict], total_optim_steps: int,
                 grad_accum_steps: int | None = None):
        """`grad_accum_steps`: micro-batches per rank per optimizer step (default: the GRPO batch's)."""
        self.cfg = cfg
        self.timeout = cfg.cluster.actor_timeout_s
        n = cfg.learner.num_actors
        remote = ray.remote(Learner)
        self.actors = [remote.options(**scheduling[r]).remote(cfg, model_path, r, n) for r in range(n)]
        self.names = [f"learner rank {r}" for r in range(n)]
        addr, port = gather([self.actors[0].master_address.remote()], self.names[:1], self.timeout)[0]
        self._all("setup", addr, port, grad_accum_steps or cfg.grad_accum_steps, total_optim_steps)

    def _all(self, method: str, *args) -> list:
        return gather([getattr(a, method).remote(*args) for a in self.actors], self.names, self.timeout, method)

    def _sharded(self, method: str, rollouts: list[Rollout], mini_batches: int = 1) -> list:
        parts = shard_minibatches(rollouts, len(self.actors), mini_batches)
        refs = [getattr(a, method).remote(p) for a, p in zip(self.actors, parts)]
        return gather(refs, self.names, self.timeout, method)

    def train_grpo(self, rollouts: list[Rollout]) -> dict[str, float]:
        """Summed statistics over ranks (sums stay sums; grad_norm and lr are the same on every rank)."""
        per_rank = self._sharded("train_grpo", rollouts, self.cfg.algorithm.mini_batches)
        totals = {k: sum(r[k] for r in per_rank) for k in per_rank[0]}
        totals["grad_norm"], totals["lr"] = per_rank[0]["grad_norm"], per_rank[0]["lr"]
        return totals

    def train_lm(self, rows: list) -> dict[str, float]:
        """One optimizer step of a pretraining/SFT stage on packed rows split across ranks; sums over ranks."""
        per_rank = self._sharded("train_lm", rows)
        return {"loss_sum": sum(r["loss_sum"] for r in per_rank), "tokens": sum(r["tokens"] for r in per_rank),
                "grad_norm": per_rank[0]["grad_norm"], "lr": per_rank[0]["lr"]}

    def export_interpolated(self, directory: str, alpha: float) -> None:
        self._all("export_interpolated", directory, alpha)

    def completion_logprobs(self, rollouts: list[Rollout]) -> list[list[float]]:
        return [lp for part in self._sharded("completion_logprobs", rollouts) for lp in part]

    def weights_ref(self) -> ray.ObjectRef:
        """Rank 0's full weights, put in the object store once for every rollout worker to read."""
        refs = [a.state_dict.remote() for a in self.actors]
        gather(refs, self.names, self.timeout)  # all ranks take part in a ZeRO-3 gather
        return refs[0]

    def push_weights_ipc(self, engines: list, bucket_mb: float) -> int:
        """Rank 0 sends its weights straight to colocated vLLM engines by CUDA IPC; all ranks join a ZeRO-3 gather."""
        return sum(self._all("send_weights_ipc", engines, bucket_mb))

    def setup_weight_broadcast(self, engines: list) -> None:
        """weight_sync=nccl, once per run: the NCCL group {learner rank 0} + {every worker of every engine}."""
        world, offsets = broadcast_ranks([self.cfg.rollout.tensor_parallel_size] * len(engines))
        host, port = gather([self.actors[0].master_address.remote()], self.names[:1], self.timeout)[0]
        # every join blocks until all have joined: start the engines' first, then rank 0's, then wait for all
        refs = [e.init_nccl.remote(host, port, offset, world) for e, offset in zip(engines, offsets)]
        refs.append(self.actors[0].join_weight_broadcast.remote(host, port, world))
        names = [f"rollout worker {i}" for i in range(len(engines))] + self.names[:1]
        gather(refs, names, self.timeout, "joining the weight broadcast group")

    def push_weights_nccl(self, engines: list, bucket_mb: float) -> int:
        """Rank 0 broadcasts its weights to vLLM engines on other GPUs; all ranks take part in ZeRO-3 gathers."""
        return sum(self._all("broadcast_weights", engines, bucket_mb))

    def save_checkpoint(self, directory: str, client_state: dict) -> None:
        self._all("save_checkpoint", directory, client_state)

    def load_checkpoint(self, directory: str) -> dict:
        return self._all("load_checkpoint", directory)[0]

    def shutdown(self) -> None:
        for a in self.actors:
            ray.kill(a)
