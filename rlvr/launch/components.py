"""The variants a run is built from, chosen once from the config: the weight-sync transport and the policy loss."""

from __future__ import annotations

from rlvr.config import ConfigError, RunConfig
from rlvr.trainer.weight_sync import AdapterSync, Colocated, CudaIpcSync, NcclSync, ObjectStoreSync, WeightSync


def build_weight_sync(cfg: RunConfig, rollout, learners) -> WeightSync:
    """`rollout.weight_sync` as an object; colocated engines are put to sleep and woken around it."""
    r, lora = cfg.rollout, cfg.learner.lora
    if lora is not None and lora.sync == "adapter":  # the config allows it with the object store only
        sync: WeightSync = AdapterSync(learners, rollout, send_base=lora.quantize != "none")
    elif r.weight_sync == "cuda_ipc":
        sync = CudaIpcSync(learners, rollout, r.sync_bucket_mb)
    elif r.weight_sync == "nccl":
        sync = NcclSync(learners, rollout, r.sync_bucket_mb)
    else:
        sync = ObjectStoreSync(learners, rollout)
    return Colocated(sync, rollout, r.sleep_level) if r.colocate else sync


def check_loss(cfg: RunConfig) -> None:
    """`algorithm.loss` names a registered loss: checked before any actor starts."""
    from rlvr.algo.losses import LOSSES

    if cfg.algorithm.loss not in LOSSES:
        raise ConfigError(f"algorithm.loss: unknown loss {cfg.algorithm.loss!r} "
                          f"(registered: {', '.join(sorted(LOSSES))})")
