"""Batches that do not depend on the number of processes, and a loader that can resume mid-epoch.

:class:`GlobalBatchSampler` permutes the conformers once per epoch from ``(seed, epoch)``, cuts the
permutation into *global* batches of ``batch_size`` conformers and gives process ``rank`` of
``world`` the slice ``batch[rank::world]``. The global batch, and so the training, is the same for
one process or many; each item carries the seed of its noise (:func:`~.noise.noise_seed`).

:class:`ResumableLoader` is a ``DataLoader`` with ``state_dict``/``load_state_dict`` (Lightning
saves them in its checkpoints): after a restart it skips the batches of the epoch that were already
trained on, so a resumed run sees exactly the batches of an uninterrupted one. It also tells its
sampler the epoch before every pass (Lightning's ``set_epoch`` reaches a loader's ``sampler`` and
``batch_sampler.sampler``, never a ``batch_sampler`` itself).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Sampler

from .noise import VALIDATION_EPOCH, noise_seed

__all__ = ["GlobalBatchSampler", "ResumableLoader"]


class GlobalBatchSampler(Sampler[list[tuple[int, int]]]):
    """Per-process slices of global batches of ``(index, noise_seed)`` items.

    Parameters
    ----------
    n : int
        Number of conformers.
    batch_size : int
        Conformers per global batch (over all processes); a multiple of ``world``.
    seed : int
        Seed of the permutation and of the noise.
    shuffle : bool
        Permute the conformers every epoch (training); else keep their order and draw the same
        noise every pass (validation).
    drop_last : bool
        Drop a last incomplete global batch.
    rank, world : int
        This process and the number of processes.
    """

    def __init__(self, n: int, batch_size: int, *, seed: int = 0, shuffle: bool = True,
                 drop_last: bool = True, rank: int = 0, world: int = 1) -> None:
        if batch_size % world:
            raise ValueError(f"the batch size ({batch_size} conformers over all processes) must "
                             f"be a multiple of the number of processes ({world})")
        self.n, self.batch_size, self.seed = int(n), int(batch_size), int(seed)
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        self.rank, self.world = int(rank), int(world)
        self.epoch = 0
        self.skip = 0  # batches of self.epoch already consumed (set when resuming)

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation and noise of ``epoch`` (Lightning calls this every epoch)."""
        if epoch != self.epoch:
            self.skip = 0
        self.epoch = int(epoch)

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full if (self.drop_last or rest == 0) else full + 1

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        if self.shuffle:
            order = np.random.default_rng([self.seed & 0xFFFFFFFF, self.epoch]).permutation(self.n)
            noise_epoch = self.epoch
        else:
            order, noise_epoch = np.arange(self.n), VALIDATION_EPOCH
        skip, self.skip = self.skip, 0
        for b in range(skip, len(self)):
            mine = order[b * self.batch_size:(b + 1) * self.batch_size][self.rank::self.world]
            yield [(int(i), noise_seed(self.seed, noise_epoch, int(i))) for i in mine]


class ResumableLoader(DataLoader):
    """A ``DataLoader`` over a :class:`GlobalBatchSampler` whose position can be saved.

    Parameters
    ----------
    dataset : Dataset
        Items drawn by ``(index, noise_seed)``.
    batch_sampler : GlobalBatchSampler
        The batches.
    consumed : callable
        Returns ``(epoch, batches of that epoch already trained on)``: read when a checkpoint
        is saved (the trainer's count: the loader itself may have fetched ahead), and the epoch
        of every new pass over the data.
    **kwargs
        Passed to ``DataLoader`` (``collate_fn``, ``num_workers``, ...).
    """

    def __init__(self, dataset: Any, batch_sampler: GlobalBatchSampler,
                 consumed: Callable[[], tuple[int, int]], **kwargs: Any) -> None:
        super().__init__(dataset, batch_sampler=batch_sampler, **kwargs)
        self._consumed = consumed

    def __iter__(self) -> Iterator[Any]:
        """A pass over the batches of the trainer's current epoch."""
        self.batch_sampler.set_epoch(self._consumed()[0])
        return super().__iter__()

    def state_dict(self) -> dict[str, int]:
        """Epoch and batches consumed, for Lightning's checkpoint."""
        epoch, batches = self._consumed()
        return {"epoch": int(epoch), "batches": int(batches)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Skip the batches of the saved epoch that were already trained on."""
        sampler = self.batch_sampler
        sampler.epoch = int(state["epoch"])
        sampler.skip = int(state["batches"])
