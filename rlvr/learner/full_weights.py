"""A learner's full weights one tensor at a time, for syncs that must not hold a gathered ZeRO-3 model at once.

Names and order are `module.state_dict()`'s, what vLLM's `load_weights` accepts (a tied embedding appears under
both its names; vLLM skips the one it does not need). `weight_metas` reads shapes from metadata alone (ZeRO-3
keeps a partitioned parameter's full shape in `ds_shape`), so buckets can be planned before anything is gathered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch


def _entries(module: torch.nn.Module, keep: Callable[[str], bool] | None = None) -> list[tuple[str, torch.Tensor]]:
    # keep_vars: the Parameter objects themselves, which carry ZeRO-3's ds_* attributes
    return [(n, t) for n, t in module.state_dict(keep_vars=True).items() if keep is None or keep(n)]


def full_shape(t: torch.Tensor) -> tuple[int, ...]:
    """The unpartitioned shape: a ZeRO-3 parameter's local tensor is an empty placeholder."""
    return tuple(t.ds_shape) if hasattr(t, "ds_shape") else tuple(t.shape)


def weight_metas(module: torch.nn.Module, dtype: torch.dtype | None = None, keep: Callable[[str], bool] | None = None
                 ) -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    """(name, full shape, dtype) of every state-dict entry `keep` accepts, in order; `dtype` overrides the
    tensors' own."""
    return [(name, full_shape(t), dtype or t.dtype) for name, t in _entries(module, keep)]


def iter_full_weights(module: torch.nn.Module, keep: Callable[[str], bool] | None = None
                      ) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, full tensor) in the order of `weight_metas`. A ZeRO-3 parameter is gathered just before it is
    yielded and partitioned again when the next one is asked for, so at most one is ever held gathered.

    Every rank must run this to the end, in step: each gather is a collective. A yielded tensor is valid only
    until the next is requested: copy it first (`weight_sync.pack_buckets` does).
    """
    import deepspeed

    for name, t in _entries(module, keep):
        # a no-op for tensors that are not ZeRO-3 parameters (other stages, buffers)
        with deepspeed.zero.GatheredParameters([t], modifier_rank=None):
            yield name, t.detach()
            if hasattr(t, "ds_id") and t.is_cuda:
                # the consumer's copy may still be queued on the GPU, and releasing the gathered buffer can hand its
                # memory to DeepSpeed's gather stream: let the copy finish first
                torch.cuda.current_stream(t.device).synchronize()
