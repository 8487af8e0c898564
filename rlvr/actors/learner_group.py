"""The data-parallel learner ranks as one object the controller calls like a local learner."""

from __future__ import annotations

import ray

from rlvr.actors.calls import gather
from rlvr.actors.rollout_group import RolloutGroup
from rlvr.algo.losses import add_stats
from rlvr.config import RunConfig
from rlvr.learner.deepspeed_setup import free_port
from rlvr.learner.learner import Learner
from rlvr.rollout.base import Rollout
from rlvr.rollout.weight_sync import IpcSender, NameFilter, NcclSender
from rlvr.utils.batching import shard_minibatches


class LearnerActor(Learner):
    """The plain learner plus what only an actor knows: the address of the node Ray placed it on."""

    def master_address(self) -> tuple[str, int]:
        """Called on rank 0: where the other ranks (or the vLLM workers of a weight broadcast) find it."""
        return ray.util.get_node_ip_address(), free_port()


class LearnerGroup:
    def __init__(self, cfg: RunConfig, model_path: str, scheduling: list[dict], total_optim_steps: int,
                 grad_accum_steps: int | None = None):
        """`grad_accum_steps`: micro-batches per rank per optimizer step (default: the GRPO batch's)."""
        self.cfg = cfg
        self.timeout = cfg.cluster.actor_timeout_s
        n = cfg.learner.num_actors
        remote = ray.remote(LearnerActor)
        self.actors = [remote.options(**scheduling[r]).remote(cfg, model_path, r, n) for r in range(n)]
        self.names = [f"learner rank {r}" for r in range(n)]
        addr, port = self._rank0_address()
        accum = grad_accum_steps or cfg.grad_accum_steps
        self._wait([a.setup.remote(addr, port, accum, total_optim_steps) for a in self.actors], "setup")

    def _rank0_address(self) -> tuple[str, int]:
        return gather([self.actors[0].master_address.remote()], self.names[:1], self.timeout, "master_address")[0]

    def _wait(self, refs: list, what: str) -> list:
        """One call per rank, in rank order: `gather` names the rank that died or did not answer."""
        return gather(refs, self.names, self.timeout, what)

    def _sharded(self, call, what: str, items: list, mini_batches: int = 1) -> list:
        """`call(actor)` is a bound remote method (e.g. `lambda a: a.train_grpo`), given each rank's shard."""
        parts = shard_minibatches(items, len(self.actors), mini_batches)
        return self._wait([call(a).remote(p) for a, p in zip(self.actors, parts)], what)

    def train_grpo(self, rollouts: list[Rollout]) -> dict[str, float]:
        """Summed statistics over ranks (sums stay sums; grad_norm and lr are the same on every rank)."""
        per_rank = self._sharded(lambda a: a.train_grpo, "train_grpo", rollouts, self.cfg.algorithm.mini_batches)
        totals: dict[str, float] = {}
        for stats in per_rank:
            add_stats(totals, stats)
        totals["grad_norm"], totals["lr"] = per_rank[0]["grad_norm"], per_rank[0]["lr"]
        return totals

    def train_lm(self, rows: list) -> dict[str, float]:
        """One optimizer step of a pretraining/SFT stage on packed rows split across ranks; sums over ranks."""
        per_rank = self._sharded(lambda a: a.train_lm, "train_lm", rows)
        totals = {k: sum(r[k] for r in per_rank) for k in per_rank[0]}  # loss_sum, tokens, token selection's
        totals["grad_norm"], totals["lr"] = per_rank[0]["grad_norm"], per_rank[0]["lr"]
        return totals

    def export_interpolated(self, directory: str, alpha: float) -> None:
        self._wait([a.export_interpolated.remote(directory, alpha) for a in self.actors], "export_interpolated")

    def completion_logprobs(self, rollouts: list[Rollout]) -> list[list[float]]:
        parts = self._sharded(lambda a: a.completion_logprobs, "completion_logprobs", rollouts)
        return [lp for part in parts for lp in part]

    def weights_ref(self, keep: NameFilter | None = None) -> ray.ObjectRef:
        """Rank 0's full weights (those `keep` accepts), put in the object store once for every rollout worker."""
        refs = [a.state_dict.remote(keep) for a in self.actors]
        self._wait(refs, "state_dict")  # all ranks take part in a ZeRO-3 gather
        return refs[0]

    def adapter_ref(self) -> tuple[ray.ObjectRef, int]:
        """learner.lora.sync=adapter: rank 0's adapter (AdapterWeights) in the object store, and its bytes."""
        refs = [a.adapter_weights.remote() for a in self.actors]
        self._wait(refs, "adapter_weights")
        nbytes = gather([self.actors[0].last_adapter_bytes.remote()], self.names[:1], self.timeout, "adapter bytes")[0]
        return refs[0], nbytes

    def base_weights_ref(self) -> ray.ObjectRef:
        """QLoRA: rank 0's frozen base, dequantised, for the engines to start from."""
        refs = [a.base_weights.remote() for a in self.actors]
        self._wait(refs, "base_weights")
        return refs[0]

    def setup_weight_ipc(self, rollout: RolloutGroup, bucket_mb: float) -> None:
        """weight_sync=cuda_ipc, once per run: rank 0's sender maps buckets into the colocated engines (which never
        change: with this transport a dead engine stops the run)."""
        sender = IpcSender(rollout.ipc_delivery(), bucket_mb)
        self._wait([a.open_weight_sender.remote(sender) for a in self.actors], "open_weight_sender")

    def push_weights_ipc(self, keep: NameFilter | None = None) -> int:
        """Rank 0 sends its weights straight to colocated vLLM engines by CUDA IPC; all ranks join ZeRO-3 gathers."""
        return sum(self._wait([a.send_weights.remote(keep) for a in self.actors], "send_weights"))

    def setup_weight_broadcast(self, rollout: RolloutGroup, bucket_mb: float) -> None:
        """weight_sync=nccl, once per run: the NCCL group {learner rank 0} + {every worker of every engine}."""
        host, port = self._rank0_address()
        sender = NcclSender(rollout.nccl_receiver(), host, port, rollout.broadcast_world_size(), bucket_mb)
        # every join blocks until all have joined: start the engines' first, then the learners', then wait for all
        joins, names = rollout.start_nccl_join(host, port)
        refs = joins + [a.open_weight_sender.remote(sender) for a in self.actors]
        gather(refs, names + self.names, self.timeout, "joining the weight broadcast group")

    def push_weights_nccl(self, keep: NameFilter | None = None) -> int:
        """Rank 0 broadcasts its weights to vLLM engines on other GPUs; all ranks take part in ZeRO-3 gathers."""
        return sum(self._wait([a.send_weights.remote(keep) for a in self.actors], "send_weights"))

    def save_checkpoint(self, directory: str, client_state: dict) -> None:
        self._wait([a.save_checkpoint.remote(directory, client_state) for a in self.actors], "save_checkpoint")

    def load_checkpoint(self, directory: str) -> dict:
        return self._wait([a.load_checkpoint.remote(directory) for a in self.actors], "load_checkpoint")[0]

    def shutdown(self) -> None:
        for a in self.actors:
            ray.kill(a)
