"""Methods vLLM mixes into each of its GPU workers, so weights can be pushed into the model it serves.

Pass `worker_extension_cls="rlvr.rollout.vllm_worker_ext.WeightSyncExtension"` to `vllm.LLM`, then call these by
name through `LLM.collective_rpc`. They run inside vLLM's worker process, where `self` is vLLM's Worker (it has
`model_runner.model`, `device`, `rank`). Names carry an `rlvr_` prefix: vLLM refuses an extension whose
attributes clash with the Worker's.

Why an extension rather than tensors as RPC arguments: on vLLM 0.26 tensors passed to `collective_rpc` arrive as
nested lists. Only small metadata (plain lists and ints) and pickled IPC handles (bytes) cross the RPC here; the
data itself moves GPU to GPU, by CUDA IPC or NCCL.

This module imports neither vLLM nor CUDA at import time, so it is importable (and its pure parts testable) on CPU.
"""

from __future__ import annotations

import pickle

import torch

from rlvr.rollout.weight_sync import (
    BucketPlan,
    gpu_uuid,
    receive_buckets,
    unpack_bucket,
)


class WeightSyncExtension:
    def rlvr_load_ipc_bucket(self, plan_wire: dict, handles: bytes) -> int:
        """Map one bucket the learner exported by CUDA IPC, load its tensors into the model; returns bytes loaded.

        The handles dict holds one entry per GPU the learner staged on; we take ours by uuid and rebuild it on
        our own device index (the learner may number the same GPU differently).
        """
        from torch.multiprocessing.reductions import rebuild_cuda_tensor

        plan = BucketPlan.from_wire(plan_wire)
        by_uuid = pickle.loads(handles)  # our own learner's payload: torch's rebuild args for a uint8 buffer
        mine = gpu_uuid(self.device)
        if mine not in by_uuid:
            raise RuntimeError(f"weight sync: no IPC handle for this worker's GPU {mine}; got {list(by_uuid)}")
        args = list(by_uuid[mine])
        args[6] = self.device.index  # torch's reduce_tensor args: position 6 is the storage's device index
        buf = rebuild_cuda_tensor(*args)
        self.model_runner.model.load_weights(unpack_bucket(buf, plan))
        # the learner frees or rewrites this buffer as soon as we return: finish every read of it first
        torch.cuda.synchronize(self.device)
        del buf
        return plan.nbytes

    def rlvr_init_nccl(self, host: str, port: int, rank_offset: int, world_size: int) -> None:
        """Join the learner's weight-broadcast group as rank rank_offset + this worker's rank (learner is 0)."""
        from vllm.distributed.device_communicators.pynccl import PyNcclCommunicator
        from vllm.distributed.utils import StatelessProcessGroup

        group = StatelessProcessGroup.create(host=host, port=port, rank=rank_offset + self.rank, world_size=world_size)
        self._rlvr_comm = PyNcclCommunicator(group, device=self.device)

    def rlvr_receive_nccl(self, plans_wire: list[dict]) -> int:
        """Receive every bucket of `plans_wire` from rank 0, loading each as it lands; returns bytes received.

        load_weights copies out of the reused receive buffer on the same stream before the next broadcast
        writes into it (see weight_sync.receive_buckets).
        """
        plans = [BucketPlan.from_wire(w) for w in plans_wire]
        return receive_buckets(self._rlvr_comm, plans, self.device, self.model_runner.model.load_weights)
