"""The denoising task: Gaussian noise on every atom and its running normalisation.

Recipe of the upstream pre-training: every atom of a conformer is displaced by isotropic Gaussian
noise of standard deviation ``σ`` (0.2 Å); the model predicts the displacement normalised by
running statistics of its x, y and z components (:class:`AccumulatedNormalization`, stored in the
checkpoints as ``pos_normalizer.*``).

Noise is drawn from a generator seeded by ``(seed, epoch, sample)`` (:func:`noise_seed`), so a
sample gets the same noise whichever process, batch or resumed run draws it: this is what makes
runs reproducible, resumes exact and DDP equal to one process.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn
from torch import distributed as dist

__all__ = ["VALIDATION_EPOCH", "AccumulatedNormalization", "gaussian_noise", "noise_seed"]

#: Epoch number used for the noise of validation samples (the same in every validation pass).
VALIDATION_EPOCH = -1


def noise_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for the noise of sample ``index`` in ``epoch`` of a run seeded ``seed``."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch) + 1, int(index)])
    return int(state.generate_state(1, dtype=np.uint64)[0]) % 2**63


def gaussian_noise(n_atoms: int, sigma: float, seed: int) -> Tensor:
    """Isotropic Gaussian displacements ``(n_atoms, 3)`` in Å, float32, from ``seed``."""
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randn(n_atoms, 3, generator=generator) * float(sigma)


class AccumulatedNormalization(nn.Module):
    """Running mean and standard deviation of each component of a stream of vectors.

    In training mode every call first adds the batch to the statistics (summed over all
    processes of a distributed run, so every process holds the same statistics), then returns
    ``(batch - mean) / std``. In eval mode the statistics are only used.

    Buffers (the checkpoints' ``pos_normalizer.*``): ``acc_sum (C,)``, ``acc_squared_sum (C,)``,
    ``acc_count (1,)``, ``num_accumulations (1,)``.

    Parameters
    ----------
    channels : int
        Number of components ``C`` (3 for noise vectors).
    epsilon : float
        Lower bound of the standard deviation.
    """

    def __init__(self, channels: int = 3, epsilon: float = 1e-8) -> None:
        super().__init__()
        self.epsilon = float(epsilon)
        self.register_buffer("acc_sum", torch.zeros(channels))
        self.register_buffer("acc_squared_sum", torch.zeros(channels))
        self.register_buffer("acc_count", torch.zeros(1))
        self.register_buffer("num_accumulations", torch.zeros(1))

    @property
    def mean(self) -> Tensor:
        """Mean of each component, shape (C,)."""
        return self.acc_sum / self.acc_count.clamp(min=1)

    @property
    def std(self) -> Tensor:
        """Standard deviation of each component, shape (C,), at least ``epsilon``."""
        var = self.acc_squared_sum / self.acc_count.clamp(min=1) - self.mean.pow(2)
        return var.clamp(min=0).sqrt().clamp(min=self.epsilon)

    @torch.no_grad()
    def update(self, batch: Tensor) -> None:
        """Add ``batch (M, C)`` to the statistics (summed over processes when distributed)."""
        stats = torch.cat([batch.sum(dim=0), batch.pow(2).sum(dim=0),
                           batch.new_tensor([batch.shape[0]])]).to(self.acc_sum.dtype)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(stats)
        c = self.acc_sum.numel()
        self.acc_sum += stats[:c]
        self.acc_squared_sum += stats[c:2 * c]
        self.acc_count += stats[2 * c:]
        self.num_accumulations += 1

    def forward(self, batch: Tensor) -> Tensor:
        """Normalised ``batch (M, C)``; adds it to the statistics first in training mode."""
        if self.training:
            self.update(batch)
        return (batch - self.mean) / self.std

    def denormalize(self, normalized: Tensor) -> Tensor:
        """Inverse of :meth:`forward` (without updating): ``normalized * std + mean``."""
        return normalized * self.std + self.mean
