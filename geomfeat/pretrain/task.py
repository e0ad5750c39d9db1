"""The Lightning module and data module of denoising pre-training.

:class:`DenoisingTask` trains a :class:`~.model.DenoisingModel`: noised conformers in, the
normalised noise out, mean squared error, AdamW with amsgrad (the upstream recipe).
:class:`ConformerData` serves the training and validation :class:`~.datasets.ConformerDataset`
through :class:`~.sampler.ResumableLoader`, sliced per process.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader

from .datasets import ConformerBatch, ConformerDataset, collate_conformers
from .model import DenoisingModel, batch_edges
from .sampler import GlobalBatchSampler, ResumableLoader

__all__ = ["ConformerData", "DenoisingTask"]


class DenoisingTask(L.LightningModule):
    """Denoising pre-training of one encoder.

    Parameters
    ----------
    architecture : str
        Encoder architecture (``"visnet"``, ``"et"``, ``"tensornet"``).
    hyperparameters : dict
        Encoder hyper-parameters (``cutoff`` in Å).
    lr : float
        AdamW learning rate.
    weight_decay : float
        AdamW weight decay.
    settings : dict, optional
        Everything that defines the run (saved in Lightning's checkpoints, compared on resume).
    """

    def __init__(self, architecture: str, hyperparameters: dict, *, lr: float = 5e-4,
                 weight_decay: float = 0.0, settings: dict | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = DenoisingModel(architecture, hyperparameters)
        self.lr, self.weight_decay = float(lr), float(weight_decay)

    def loss(self, batch: ConformerBatch) -> torch.Tensor:
        """Mean squared error between predicted and normalised noise (float32)."""
        pred = self.model(batch.z, batch_edges(batch, self.model.cutoff))
        target = self.model.pos_normalizer(batch.noise)
        return F.mse_loss(pred.float(), target.float())

    def training_step(self, batch: ConformerBatch, batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch)
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True,
                 batch_size=len(batch), sync_dist=True)
        return loss

    def validation_step(self, batch: ConformerBatch, batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch)
        self.log("val_loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=len(batch), sync_dist=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.model.parameters(), lr=self.lr,
                                 weight_decay=self.weight_decay, amsgrad=True)


class ConformerData(L.LightningDataModule):
    """Training and validation loaders over conformer datasets.

    Parameters
    ----------
    train, val : ConformerDataset
        The two splits (``val`` may be empty: no validation).
    batch_size : int
        Conformers per optimisation step over all processes.
    seed : int
        Seed of the permutations and of the noise.
    num_workers : int
        Loader worker processes.
    """

    def __init__(self, train: ConformerDataset, val: ConformerDataset, *, batch_size: int,
                 seed: int = 0, num_workers: int = 0) -> None:
        super().__init__()
        self.train, self.val = train, val
        self.batch_size, self.seed, self.num_workers = int(batch_size), int(seed), num_workers

    def transfer_batch_to_device(self, batch: ConformerBatch, device: torch.device,
                                 dataloader_idx: int) -> ConformerBatch:
        return batch.to(device)

    def _consumed(self) -> tuple[int, int]:
        trainer = self.trainer
        return trainer.current_epoch, trainer.fit_loop.epoch_loop.batch_progress.current.processed

    def _loader(self, dataset: ConformerDataset, train: bool) -> DataLoader:
        trainer: Any = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        sampler = GlobalBatchSampler(len(dataset), self.batch_size, seed=self.seed,
                                     shuffle=train, drop_last=train, rank=rank, world=world)
        options = {"collate_fn": collate_conformers, "num_workers": self.num_workers,
                   "persistent_workers": self.num_workers > 0}
        if train:
            return ResumableLoader(dataset, sampler, self._consumed, **options)
        return DataLoader(dataset, batch_sampler=sampler, **options)  # not resumed: no state

    def train_dataloader(self) -> ResumableLoader:
        return self._loader(self.train, True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.val, False) if len(self.val) else []
