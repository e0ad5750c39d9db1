"""Denoising pre-training and domain adaptation of geomfeat's encoders.

One job per module:

* :mod:`~geomfeat.pretrain.heads`: gated equivariant denoising heads (upstream key layout);
* :mod:`~geomfeat.pretrain.noise`: Gaussian noise, seeded per sample, and its normaliser;
* :mod:`~geomfeat.pretrain.datasets`: conformers streamed from MD trajectories (geomfeat's
  readers) or extended-XYZ / SDF files (ASE), split into training and validation blocks;
* :mod:`~geomfeat.pretrain.sampler`: process-independent global batches, mid-epoch resume;
* :mod:`~geomfeat.pretrain.model`: encoder + head + normaliser, strict checkpoint loading;
* :mod:`~geomfeat.pretrain.task`: the Lightning module and data module;
* :mod:`~geomfeat.pretrain.train`: settings, the Lightning ``Trainer``, outputs;
* :mod:`~geomfeat.pretrain.resume`: where resume checkpoints are taken, resume checks;
* :mod:`~geomfeat.pretrain.losslog`: the loss log (``metrics.csv``) kept in the checkpoints;
* :mod:`~geomfeat.pretrain.card`: checkpoint + model card JSON;
* :mod:`~geomfeat.pretrain.cli`: the ``geomfeat pretrain`` command.

The recipe (geom2vec's, after TorchMD-Net): Gaussian noise of σ = 0.2 Å on every atom, the target
is the noise normalised by running statistics of its components, a head of two gated equivariant
blocks on the encoder's scalar and vector features, MSE, AdamW with amsgrad at lr 5e-4.

Needs Lightning: ``pip install 'geomfeat[pretrain]'``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: Public name -> module (imported on first use: the CLI parser needs no Lightning).
_LAZY = {
    "AccumulatedNormalization": ".noise", "ConformerBatch": ".datasets",
    "ConformerDataset": ".datasets", "DenoisingHead": ".heads", "DenoisingModel": ".model",
    "ExtXYZSource": ".datasets", "GatedEquivariantBlock": ".heads",
    "PretrainConfig": ".train", "PretrainResult": ".train", "SDFSource": ".datasets",
    "TrajectorySource": ".datasets", "denoising_loss": ".train", "load_state": ".model",
    "open_source": ".datasets", "plot_losses": ".losslog", "pretrain": ".train",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AccumulatedNormalization",
    "ConformerBatch",
    "ConformerDataset",
    "DenoisingHead",
    "DenoisingModel",
    "ExtXYZSource",
    "GatedEquivariantBlock",
    "PretrainConfig",
    "PretrainResult",
    "SDFSource",
    "TrajectorySource",
    "denoising_loss",
    "load_state",
    "open_source",
    "plot_losses",
    "pretrain",
]
