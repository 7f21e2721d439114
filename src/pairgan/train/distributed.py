"""Data-parallel training under torchrun: process group, gradient averaging, rank roles.

``torchrun --nproc_per_node N -m pairgan train ...`` starts N processes; each reads its rank
from the environment. Every rank holds a full copy of every network and trains on its own slice
of each global batch; after each backward the gradients of the parameters about to be updated
are averaged across ranks with bucketed all-reduces (the algorithm of
``DistributedDataParallel``), so all ranks take the same optimiser step and stay identical.

Why not wrap the networks in ``DistributedDataParallel`` itself: GAN methods alternate several
optimisers within one step and freeze a network while another is updated (D is frozen while G
backpropagates through it; DRPAN and GGB have three or more). DDP's reducer expects the same
parameters to receive gradients in every backward and needs ``find_unused_parameters`` plus
no-sync juggling for that pattern. Averaging exactly the gradients of the optimiser that is about
to step (in :meth:`pairgan.methods.base.StepContext.optimize`) is the same mathematics, works for
every method unchanged, and composes with gradient accumulation and the fp16 grad scaler.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

# Gradients are flattened into buckets of about this many bytes per all-reduce call.
BUCKET_BYTES = 25 * 1024 * 1024


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job (``world_size`` 1 when not under torchrun)."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_info() -> DistInfo:
    """Rank and world size from torchrun's environment variables."""
    return DistInfo(
        world_size=int(os.environ.get("WORLD_SIZE", "1")),
        rank=int(os.environ.get("RANK", "0")),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def init(device: torch.device) -> DistInfo:
    """Join the process group when launched by torchrun (gloo on CPU, NCCL on CUDA)."""
    info = env_info()
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return info


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def average_gradients(params: list[nn.Parameter], world_size: int) -> None:
    """All-reduce the ``.grad`` of ``params`` (sum, then / world_size), a few large buckets at a time.

    A parameter without a gradient on this rank contributes zeros, so every rank issues the
    same collective calls in the same order.
    """
    if world_size <= 1:
        return
    bucket: list[nn.Parameter] = []
    size = 0
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        bucket.append(p)
        size += p.grad.numel() * p.grad.element_size()
        if size >= BUCKET_BYTES:
            _reduce_bucket(bucket, world_size)
            bucket, size = [], 0
    if bucket:
        _reduce_bucket(bucket, world_size)


def _reduce_bucket(params: list[nn.Parameter], world_size: int) -> None:
    grads = [p.grad for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


def broadcast_modules(modules: list[nn.Module]) -> None:
    """Copy rank 0's parameters and buffers to every rank (one identical start)."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    with torch.no_grad():
        for m in modules:
            for t in list(m.parameters()) + list(m.buffers()):
                dist.broadcast(t.data, src=0)


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any rank (a collective: call on all ranks)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank; ``[obj]`` in one process (a
    collective: call on all ranks)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def mean_across_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average logged scalars over ranks (a collective: same keys on all ranks)."""
    if not (dist.is_available() and dist.is_initialized()) or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return dict(zip(keys, t.tolist()))


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Synchronised batch statistics across ranks (fixes the reference's multi-GPU batch-norm
    bug). PyTorch implements SyncBatchNorm for CUDA only; on CPU batch norm stays per rank."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return module
