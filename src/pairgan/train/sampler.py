"""The data order of a run: which items each rank trains on, batch by batch, epoch by epoch.

The order is a pure function of ``(seed, epoch)``, so a resumed run (even on a different number
of processes) continues at exactly the sample where it stopped.

:func:`build_loader` is the one place a training loop gets its batches from: a map-style data set
(a folder) is ordered by :class:`EpochBatchSampler`; a WebDataset shard stream
(:class:`pairgan.data.shards.ShardDataset`) orders itself (:class:`pairgan.data.shards.ShardOrder`).
Both are an :class:`EpochOrder`, which is all :class:`BatchStream` and the checkpoints see.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from pairgan.data.shards import ShardDataset

__all__ = ["BatchStream", "EpochBatchSampler", "EpochOrder", "build_loader"]


class EpochOrder(Protocol):
    """A run's data order as the loop positions it: ``len(order)`` batches of this rank per epoch,
    ``global_batch`` items per step over all ranks, ``set_position`` before an iteration starts,
    and ``describe()``: what besides (seed, epoch) fixes the order (saved with checkpoints)."""

    @property
    def global_batch(self) -> int: ...

    def __len__(self) -> int: ...

    def set_position(self, epoch: int, start_batch: int) -> None: ...

    def describe(self) -> dict[str, Any]: ...


class EpochBatchSampler(Sampler):
    """This rank's batches of ``(epoch, index)`` keys, in an order fixed by ``(seed, epoch)``.

    The permutation is a pure function of the seed and the epoch; ``set_position`` lets a resumed
    run start in the middle of an epoch at exactly the batch where it stopped. Datasets seed
    their augmentation from the same key, so a sample never depends on worker processes.

    Under torchrun each *global* batch of ``batch_size * world_size`` consecutive items of the
    permutation is cut into ``world_size`` slices and rank ``r`` takes slice ``r``: together the
    ranks see exactly the batches one process with the global batch size would see. With more
    than one rank the epoch is padded by wrapping around so that every rank gets full batches.
    """

    def __init__(
        self, n: int, batch_size: int, seed: int, shuffle: bool = True, *, world_size: int = 1, rank: int = 0
    ) -> None:
        self.n, self.batch_size, self.seed, self.shuffle = n, batch_size, seed, shuffle
        self.world_size, self.rank = world_size, rank
        self.epoch, self.start = 0, 0

    def set_position(self, epoch: int, start_batch: int) -> None:
        """Make the next iteration yield ``epoch``'s batches from ``start_batch`` on."""
        self.epoch, self.start = epoch, start_batch

    @property
    def global_batch(self) -> int:
        """Items per step over all ranks."""
        return self.batch_size * self.world_size

    def order(self, epoch: int) -> np.ndarray:
        """The item indices of ``epoch`` in training order (padded to whole global batches)."""
        order = np.random.default_rng([self.seed, epoch, 0x5A3B]).permutation(self.n) if self.shuffle else (
            np.arange(self.n)
        )
        pad = (-self.n) % self.global_batch if self.world_size > 1 else 0
        return np.concatenate([order, np.resize(order, pad)]) if pad else order

    def __len__(self) -> int:
        """Global batches per epoch."""
        return math.ceil(self.n / self.global_batch)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = self.order(self.epoch)
        gb, b0 = self.global_batch, self.rank * self.batch_size
        for b in range(self.start, len(self)):
            chunk = order[b * gb : (b + 1) * gb]
            yield [(self.epoch, int(i)) for i in chunk[b0 : b0 + self.batch_size]]

    def describe(self) -> dict[str, Any]:
        """A permutation of (seed, epoch) cut into global batches: exact on any number of ranks."""
        return {"kind": "permutation", "shuffle": self.shuffle}


def build_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    seed: int,
    shuffle: bool = True,
    world_size: int = 1,
    rank: int = 0,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> tuple[DataLoader, EpochOrder]:
    """The loader of this rank's training batches and the order that positions it.

    A shard stream is iterated by fresh worker processes every epoch (the position travels with the
    data set into them); a map-style data set keeps its workers (the sampler runs in this process)."""
    if isinstance(dataset, ShardDataset):
        order: EpochOrder = dataset.order(batch_size=batch_size, world_size=world_size, rank=rank,
                                          workers=num_workers)
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, persistent_workers=False,
                            pin_memory=pin_memory)
        return loader, order
    sampler = EpochBatchSampler(len(dataset), batch_size, seed, shuffle=shuffle, world_size=world_size, rank=rank)
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(seed),
    )
    return loader, sampler


class BatchStream:
    """An endless stream of this rank's batches across epochs, tracking ``epoch`` and ``batch``
    (the next batch's index in its epoch): the position a checkpoint records."""

    def __init__(self, loader: DataLoader, sampler: EpochOrder, epoch: int, batch: int) -> None:
        self.loader, self.sampler, self.epoch, self.batch = loader, sampler, epoch, batch
        self._it: Iterator[Any] | None = None

    def next(self) -> Any:
        """The next batch; crosses into the next epoch after the last batch of this one."""
        if self._it is None:
            self.sampler.set_position(self.epoch, self.batch)
            self._it = iter(self.loader)
        item = next(self._it)
        self.batch += 1
        if self.batch == len(self.sampler):
            self.epoch, self.batch, self._it = self.epoch + 1, 0, None
        return item
