"""Weight sync as one object the loop calls: learner rank 0's weights into every rollout engine after an update.

One implementation per transport, chosen once from `rollout.weight_sync` (rlvr/launch/components.py) and handed
to the loop with the workers; `Colocated` wraps any of them when vLLM shares the learners' GPU and owns the
sleep/wake order. Implementations only call typed methods of the worker groups: the Ray fan-out lives in
rlvr/actors, the bytes on the wire in rlvr/rollout/weight_sync.py, and the learner only yields named tensors.

`keep` filters weights by name (every rank applies the same filter, so ZeRO-3 gathers stay in step): a LoRA
strategy can send its adapters only.
"""

from __future__ import annotations

from typing import Protocol

from rlvr.rollout.weight_sync import NameFilter


class SyncRollout(Protocol):
    def load_weights(self, weights_ref) -> None: ...
    def load_adapter(self, adapter_ref) -> None: ...
    def sleep(self, level: int) -> None: ...
    def wake_up(self, tags: list[str] | None = None) -> None: ...


class SyncLearners(Protocol):
    def weights_ref(self, keep: NameFilter | None = None): ...
    def setup_weight_ipc(self, rollout, bucket_mb: float) -> None: ...
    def push_weights_ipc(self, keep: NameFilter | None = None) -> int: ...
    def setup_weight_broadcast(self, rollout, bucket_mb: float) -> None: ...
    def push_weights_nccl(self, keep: NameFilter | None = None) -> int: ...
    def adapter_ref(self) -> tuple[object, int]: ...
    def base_weights_ref(self): ...


class WeightSync:
    """The base: `setup` once per run, `before_update` before the learners train, `push` after."""

    bytes_last: int | None = None
    """Bytes the last push moved, where the implementation knows (logged as weight_sync/bytes)."""

    def setup(self) -> None:
        """Once, before the first push (NCCL forms its group here)."""

    def before_update(self) -> None:
        """The learners are about to train (a colocated engine hands over the GPU)."""

    def push(self) -> None:
        raise NotImplementedError

    def restore(self, learners: SyncLearners, rollout: SyncRollout) -> None:
        """After a resume: the engines are awake and no transport may have pushed yet, so through the object
        store."""
        rollout.load_weights(learners.weights_ref())


class ObjectStoreSync(WeightSync):
    """Rank 0's full weights on CPU, put in the object store once, read by every rollout worker (any engine)."""

    def __init__(self, learners: SyncLearners, rollout: SyncRollout, keep: NameFilter | None = None):
        self.learners, self.rollout, self.keep = learners, rollout, keep

    def push(self) -> None:
        ref = self.learners.weights_ref() if self.keep is None else self.learners.weights_ref(self.keep)
        self.rollout.load_weights(ref)


class CudaIpcSync(WeightSync):
    """vLLM on the learner's GPU: rank 0 packs bf16 buckets there and the engines map them by CUDA IPC."""

    def __init__(self, learners: SyncLearners, rollout: SyncRollout, bucket_mb: float,
                 keep: NameFilter | None = None):
        self.learners, self.rollout, self.bucket_mb, self.keep = learners, rollout, bucket_mb, keep

    def setup(self) -> None:
        self.learners.setup_weight_ipc(self.rollout, self.bucket_mb)

    def push(self) -> None:
        self.bytes_last = self.learners.push_weights_ipc(self.keep)


class NcclSync(WeightSync):
    """vLLM on GPUs of its own: rank 0 broadcasts bf16 buckets over a NCCL group formed once per run."""

    def __init__(self, learners: SyncLearners, rollout: SyncRollout, bucket_mb: float,
                 keep: NameFilter | None = None):
        self.learners, self.rollout, self.bucket_mb, self.keep = learners, rollout, bucket_mb, keep

    def setup(self) -> None:
        self.learners.setup_weight_broadcast(self.rollout, self.bucket_mb)

    def push(self) -> None:
        self.bytes_last = self.learners.push_weights_nccl(self.keep)


class Colocated(WeightSync):
    """vLLM sharing the learners' GPU: asleep while they train; woken weights-first, then its KV cache, so the
    cache is allocated only after the new weights are in."""

    def __init__(self, inner: WeightSync, rollout: SyncRollout, sleep_level: int):
        self.inner, self.rollout, self.sleep_level = inner, rollout, sleep_level

    def setup(self) -> None:
        self.inner.setup()

    def before_update(self) -> None:
        self.rollout.sleep(self.sleep_level)

    def push(self) -> None:
        self.rollout.wake_up(["weights"])
        self.inner.push()
        self.bytes_last = self.inner.bytes_last
        self.rollout.wake_up(["kv_cache"])

    def restore(self, learners: SyncLearners, rollout: SyncRollout) -> None:
        self.inner.restore(learners, rollout)


class AdapterSync(WeightSync):
    """learner.lora.sync=adapter: only the LoRA tensors (megabytes) go through the object store; each engine
    applies them to the base it loaded (rlvr/rollout/hf_engine.py, vllm_engine.py). The base never changes, except
    with QLoRA: the learner's base is the 4-bit one, so `setup` first sends it dequantised, once, or the engines
    would sample from the bf16 weights it was made from."""

    def __init__(self, learners: SyncLearners, rollout: SyncRollout, send_base: bool):
        self.learners, self.rollout, self.send_base = learners, rollout, send_base

    def setup(self) -> None:
        if self.send_base:
            self.rollout.load_weights(self.learners.base_weights_ref())

    def push(self) -> None:
        ref, self.bytes_last = self.learners.adapter_ref()
        self.rollout.load_adapter(ref)

    def restore(self, learners: SyncLearners, rollout: SyncRollout) -> None:
        # the engines hold the base (setup ran): the adapter alone brings them to the checkpoint's policy; full
        # merged weights here would have the adapter applied twice
        self.push()
