"""Learner-side weight sync to vLLM engines: pack a state dict into a few flat buffers, then hand them over.

Why buckets: one RPC or one NCCL call per tensor costs ~290 round trips for a 0.5B model; packing tensors into
flat uint8 buffers of `bucket_mb` makes that a handful, and the receiver unpacks views without copying.

Both sides share a *plan* (names, dtypes, shapes, byte offsets), computed up front from metadata alone, so the
learner can send it in one message before any data moves and ZeRO-3 callers can plan from `ds_shape` before
gathering. `pack_buckets` then consumes (name, tensor) pairs lazily: each tensor is copied into its bucket before
the next is asked for, so a generator that gathers one ZeRO-3 parameter at a time only holds one gathered at once.

Two transports: CUDA IPC (learner and engine on the same GPU: the engine maps the learner's buffer, no host copy)
and an NCCL broadcast from learner rank 0 to every engine worker (separate GPUs). The broadcast's bucket protocol
(`broadcast_buckets`/`receive_buckets`) takes any communicator with `broadcast(tensor, src, stream)`, so CPU tests
run it over gloo. vLLM is imported lazily.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import torch

NameFilter = Callable[[str], bool]
"""Which weights a sync sends, by state-dict name (all of them when None)."""

ALIGN = 256  # byte alignment of each tensor in a bucket: any dtype view is legal and loads stay aligned

_DTYPES = {str(d).removeprefix("torch."): d for d in (torch.float32, torch.bfloat16, torch.float16, torch.float64,
                                                     torch.int64, torch.int32, torch.int8, torch.uint8, torch.bool)}


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str
    shape: tuple[int, ...]
    offset: int
    """Byte offset in the bucket."""
    nbytes: int


@dataclass(frozen=True)
class BucketPlan:
    specs: tuple[TensorSpec, ...]
    nbytes: int

    def to_wire(self) -> dict:
        """Plain lists and ints: survives msgpack (vLLM's RPC) and Ray unchanged."""
        return {"nbytes": self.nbytes, "specs": [[s.name, s.dtype, list(s.shape), s.offset, s.nbytes] for s in self.specs]}

    @staticmethod
    def from_wire(wire: dict) -> BucketPlan:
        specs = tuple(TensorSpec(n, d, tuple(shape), off, nb) for n, d, shape, off, nb in wire["specs"])
        return BucketPlan(specs, int(wire["nbytes"]))


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def plan_buckets(metas: Iterable[tuple[str, tuple[int, ...], torch.dtype]], bucket_mb: float) -> list[BucketPlan]:
    """Group tensors, in order, into buckets of at most bucket_mb; a tensor larger than that gets its own."""
    limit = int(bucket_mb * 2**20)
    plans: list[BucketPlan] = []
    specs: list[TensorSpec] = []
    used = 0
    for name, shape, dtype in metas:
        nbytes = torch.Size(shape).numel() * dtype.itemsize
        if specs and used + nbytes > limit:
            plans.append(BucketPlan(tuple(specs), used))
            specs, used = [], 0
        specs.append(TensorSpec(name, dtype_name(dtype), tuple(shape), used, nbytes))
        used = _aligned(used + nbytes)
    if specs:
        plans.append(BucketPlan(tuple(specs), used))
    return plans


def plan_for(named: Iterable[tuple[str, torch.Tensor]], bucket_mb: float) -> list[BucketPlan]:
    return plan_buckets(((n, tuple(t.shape), t.dtype) for n, t in named), bucket_mb)


def fill_bucket(buf: torch.Tensor, plan: BucketPlan, it: Iterator[tuple[str, torch.Tensor]]) -> None:
    """Copy the next len(plan.specs) pairs of `it` into their slots of `buf`, checking names, shapes and dtypes."""
    for spec in plan.specs:
        name, tensor = next(it)
        if name != spec.name or tuple(tensor.shape) != spec.shape or dtype_name(tensor.dtype) != spec.dtype:
            raise ValueError(f"weight sync: got {name} {tuple(tensor.shape)} {tensor.dtype}, plan expects "
                             f"{spec.name} {spec.shape} {spec.dtype} (iterate in the same order as the plan)")
        # copy through a typed view of the slot: one kernel, no cast (dtypes were checked)
        slot = buf[spec.offset : spec.offset + spec.nbytes].view(tensor.dtype).view(tensor.shape)
        slot.copy_(tensor, non_blocking=True)


def pack_buckets(
    named: Iterable[tuple[str, torch.Tensor]],
    plans: list[BucketPlan],
    device: torch.device | str,
    out: torch.Tensor | None = None,
) -> Iterator[tuple[BucketPlan, torch.Tensor]]:
    """Yield (plan, flat uint8 buffer) per bucket; names must arrive in plan order.

    With `out` (a uint8 buffer at least as large as the largest bucket) every bucket is written into that one
    buffer: the caller must be done with a bucket (receiver finished, or its use enqueued on the same stream)
    before asking for the next.
    """
    it = iter(named)
    for plan in plans:
        buf = out[: plan.nbytes] if out is not None else torch.empty(plan.nbytes, dtype=torch.uint8, device=device)
        fill_bucket(buf, plan, it)
        yield plan, buf
    if next(it, None) is not None:
        raise ValueError("weight sync: more tensors than the plan holds")


def unpack_bucket(buf: torch.Tensor, plan: BucketPlan) -> list[tuple[str, torch.Tensor]]:
    """Views into `buf`, one per tensor (no copy): valid only while `buf` is."""
    out = []
    for s in plan.specs:
        out.append((s.name, buf[s.offset : s.offset + s.nbytes].view(_DTYPES[s.dtype]).view(s.shape)))
    return out


# ---------------------------------------------------------------------------------------------------------------
# CUDA IPC (learner and engine on the same GPU)


def gpu_uuid(device: torch.device | int) -> str:
    return str(torch.cuda.get_device_properties(device).uuid)


def export_ipc(buffers: list[torch.Tensor]) -> bytes:
    """Pickled {GPU uuid: torch's rebuild args} for buffers on different GPUs (one per TP rank's GPU).

    Keyed by uuid because the engine's workers may number the same GPU differently (CUDA_VISIBLE_DEVICES).
    Pickled here, not passed as objects, because vLLM's RPC (msgpack) turns tuples and dtypes into lists.
    """
    from torch.multiprocessing.reductions import reduce_tensor

    handles = {}
    for buf in buffers:
        _, args = reduce_tensor(buf)
        handles[gpu_uuid(buf.device)] = args
    return pickle.dumps(handles)


def send_ipc(
    named: Iterable[tuple[str, torch.Tensor]],
    plans: list[BucketPlan],
    deliver: Callable[[dict, bytes], None],
    devices: list[torch.device] | None = None,
) -> int:
    """Pack on the GPU(s), export one IPC handle per bucket and call `deliver(plan_wire, handles)`; returns bytes.

    `deliver` must return only after the engine has loaded the bucket (it reuses nothing after that, and we free
    or overwrite the buffer next). `devices`: GPUs to stage on, one per engine worker (TP>1 on other GPUs); by
    default the current one.
    """
    devices = devices or [torch.device("cuda", torch.cuda.current_device())]
    largest = max(p.nbytes for p in plans)
    staging = [torch.empty(largest, dtype=torch.uint8, device=d) for d in devices]
    total = 0
    for plan, buf in pack_buckets(named, plans, devices[0], out=staging[0]):
        for other in staging[1:]:
            other[: plan.nbytes].copy_(buf, non_blocking=True)
        # the engine reads through its own stream: all our copies must have landed before it is told to
        torch.cuda.synchronize()
        deliver(plan.to_wire(), export_ipc([s[: plan.nbytes] for s in staging]))
        total += plan.nbytes
    del staging
    torch.cuda.ipc_collect()  # release blocks the engine has closed its handles to
    return total


# ---------------------------------------------------------------------------------------------------------------
# NCCL broadcast (learner rank 0 -> every engine worker on other GPUs)


class Communicator(Protocol):
    """What the bucket protocol needs of a group: vLLM's PyNcclCommunicator; in CPU tests, gloo."""

    def broadcast(self, tensor: torch.Tensor, src: int, stream=None) -> None: ...


def broadcast_ranks(tp_sizes: list[int]) -> tuple[int, list[int]]:
    """World size and each engine's first rank in the broadcast group: the learner is rank 0, then every worker
    of engine 0, of engine 1, ... (engine e's workers join as offset[e] + their TP rank)."""
    offsets, next_rank = [], 1
    for tp in tp_sizes:
        offsets.append(next_rank)
        next_rank += tp
    return next_rank, offsets


def _stream(device: torch.device):
    return torch.cuda.current_stream(device) if device.type == "cuda" else None


def broadcast_buckets(comm: Communicator, named: Iterable[tuple[str, torch.Tensor]], plans: list[BucketPlan],
                      device: torch.device | str) -> int:
    """Sender (rank 0): pack and broadcast every bucket; the receivers must be in `receive_buckets`. Returns bytes.

    One staging buffer is enough: packing and broadcasting run in order on the current stream, so bucket k+1
    overwrites the buffer only after bucket k's broadcast has been issued ahead of it.
    """
    device = torch.device(device)
    stream = _stream(device)
    staging = torch.empty(max(p.nbytes for p in plans), dtype=torch.uint8, device=device)
    total = 0
    for plan, buf in pack_buckets(named, plans, device, out=staging):
        comm.broadcast(buf, src=0, stream=stream)
        total += plan.nbytes
    if stream is not None:
        stream.synchronize()
    return total


def receive_buckets(comm: Communicator, plans: list[BucketPlan], device: torch.device | str,
                    load: Callable[[list[tuple[str, torch.Tensor]]], None]) -> int:
    """Receiver: take every bucket from rank 0 and `load` its (name, view) pairs as it lands; returns bytes.

    One buffer of the largest bucket's size is reused, so `load` must be done with the views (copied out, or its
    copies enqueued on the current stream, as vLLM's load_weights does) before it returns.
    """
    device = torch.device(device)
    stream = _stream(device)
    buf_all = torch.empty(max(p.nbytes for p in plans), dtype=torch.uint8, device=device)
    for plan in plans:
        buf = buf_all[: plan.nbytes]
        comm.broadcast(buf, src=0, stream=stream)
        load(unpack_bucket(buf, plan))
    if stream is not None:
        stream.synchronize()
    return sum(p.nbytes for p in plans)


class NcclBroadcaster:
    """Rank 0 of a group {learner rank 0} + {every engine worker}; workers join with `WeightSyncExtension`.

    Uses vLLM's stateless group (a TCP store plus a NCCL communicator of its own) so it neither touches the
    learner's torch.distributed world (DeepSpeed's) nor needs the engines to be part of it. Construction blocks
    until every worker has joined: start the workers' join RPC first (asynchronously), then construct this.
    """

    def __init__(self, host: str, port: int, world_size: int, device: torch.device | int | None = None):
        from vllm.distributed.device_communicators.pynccl import PyNcclCommunicator
        from vllm.distributed.utils import StatelessProcessGroup

        self.device = torch.device("cuda", torch.cuda.current_device()) if device is None else torch.device(device)
        group = StatelessProcessGroup.create(host=host, port=port, rank=0, world_size=world_size)
        self.comm = PyNcclCommunicator(group, device=self.device)

    def broadcast(self, named: Iterable[tuple[str, torch.Tensor]], plans: list[BucketPlan]) -> int:
        """Broadcast every bucket; the workers must already be in `rlvr_receive_nccl(plans)`. Returns bytes sent."""
        return broadcast_buckets(self.comm, named, plans, self.device)


# ---------------------------------------------------------------------------------------------------------------
# Senders: the learner-side end of a transport, opened once on learner rank 0. `Learner.send_weights` hands one
# the bucket plans and the lazy (name, tensor) pairs; the engine side is reached through plain callables that the
# actor groups build (rlvr/actors), so the learner itself never talks to Ray.


class WeightSender(Protocol):
    bucket_mb: float

    def open(self, device: torch.device) -> None:
        """Once per run, on learner rank 0."""

    def send(self, plans: list[BucketPlan], named: Iterator[tuple[str, torch.Tensor]]) -> int:
        """Deliver every bucket; returns the bytes sent."""


class IpcSender:
    """`deliver(plan_wire, handles)` returns once every engine has loaded the bucket (see `send_ipc`)."""

    def __init__(self, deliver: Callable[[dict, bytes], None], bucket_mb: float):
        self.deliver, self.bucket_mb = deliver, bucket_mb

    def open(self, device: torch.device) -> None:
        pass

    def send(self, plans: list[BucketPlan], named: Iterator[tuple[str, torch.Tensor]]) -> int:
        return send_ipc(named, plans, self.deliver)


class NcclSender:
    """`receive(plans_wire)` starts every engine worker's receive and returns a callable that waits for them all.
    `open` joins the group as its rank 0 and blocks until every worker has joined."""

    def __init__(self, receive: Callable[[list[dict]], Callable[[], None]], host: str, port: int, world_size: int,
                 bucket_mb: float):
        self.receive, self.host, self.port, self.world_size = receive, host, port, world_size
        self.bucket_mb = bucket_mb
        self.broadcaster: NcclBroadcaster | None = None

    def open(self, device: torch.device) -> None:
        self.broadcaster = NcclBroadcaster(self.host, self.port, self.world_size, device)

    def send(self, plans: list[BucketPlan], named: Iterator[tuple[str, torch.Tensor]]) -> int:
        if self.broadcaster is None:
            raise RuntimeError("NcclSender.send before open (LearnerGroup.setup_weight_broadcast)")
        # receives first: broadcast() waits until its buckets have landed, which needs every worker to be inside
        # its receive already
        wait = self.receive([p.to_wire() for p in plans])
        sent = self.broadcaster.broadcast(named, plans)
        wait()
        return sent
