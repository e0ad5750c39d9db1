"""Denoising heads: per-atom noise vectors from an encoder's scalar and vector features.

The head of the published recipe (geom2vec, after TorchMD-Net's ``EquivariantVectorOutput``) is
two gated equivariant blocks (Schütt et al., PaiNN, ICML 2021), ``H → H/2 → 1``, applied to the
encoder's output ``x (N, H)``, ``vec (N, 3, H)``; the single vector channel left is the predicted
noise of every atom, in units of the normalised noise (see :mod:`geomfeat.pretrain.noise`).

The upstream checkpoints keep this head under ``vec_out.*`` for ViSNet (its own equivariant
vector output) and under ``output_model_noise.*`` for the Equivariant Transformer and
TensorNet (:data:`HEAD_PREFIX`). Parameter names inside the head are those of the files.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["HEAD_PREFIX", "DenoisingHead", "GatedEquivariantBlock", "head_prefix"]

#: Key prefix of the denoising head in the upstream checkpoints, per architecture.
HEAD_PREFIX = {"visnet": "vec_out.", "et": "output_model_noise.",
               "tensornet": "output_model_noise."}


def head_prefix(architecture: str) -> str:
    """Checkpoint key prefix of the denoising head of ``architecture``."""
    return HEAD_PREFIX.get(architecture, "output_model_noise.")


def _safe_norm(v: Tensor) -> Tensor:
    """Norm over the Cartesian axis 1 of ``v (N, 3, C)``; zero vectors give 0 with zero gradient."""
    sq = (v * v).sum(dim=1)
    nonzero = sq > 0
    return torch.where(nonzero, torch.where(nonzero, sq, torch.ones_like(sq)).sqrt(),
                       torch.zeros_like(sq))


class GatedEquivariantBlock(nn.Module):
    """Gated equivariant block: scalars and vectors of ``C_in`` channels → ``C_out`` channels.

    ``vec1 = |W₁ v|``, ``vec2 = W₂ v``; an MLP of ``[x, vec1]`` gives new scalars and one gate per
    output vector channel, ``v' = gate ⊙ vec2``. Rotating ``v`` rotates ``v'``; ``x'`` is
    invariant.

    Parameters
    ----------
    in_channels : int
        Input channels ``C_in`` of both ``x`` and ``v``.
    out_channels : int
        Output channels ``C_out``.
    intermediate_channels : int, optional
        Width of the MLP's hidden layer (default ``C_in``).
    scalar_activation : bool
        Apply SiLU to the output scalars (the first block of the head does).
    """

    def __init__(self, in_channels: int, out_channels: int,
                 intermediate_channels: int | None = None, scalar_activation: bool = False
                 ) -> None:
        super().__init__()
        mid = in_channels if intermediate_channels is None else intermediate_channels
        self.out_channels = int(out_channels)
        self.vec1_proj = nn.Linear(in_channels, in_channels, bias=False)
        self.vec2_proj = nn.Linear(in_channels, out_channels, bias=False)
        self.update_net = nn.Sequential(nn.Linear(2 * in_channels, mid), nn.SiLU(),
                                        nn.Linear(mid, 2 * out_channels))
        self.scalar_activation = bool(scalar_activation)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform weights and zero biases (TorchMD-Net's initialisation)."""
        nn.init.xavier_uniform_(self.vec1_proj.weight)
        nn.init.xavier_uniform_(self.vec2_proj.weight)
        for layer in (self.update_net[0], self.update_net[2]):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """``x (N, C_in)``, ``v (N, 3, C_in)`` → ``x' (N, C_out)``, ``v' (N, 3, C_out)``."""
        vec1 = _safe_norm(self.vec1_proj(v))
        vec2 = self.vec2_proj(v)
        x, gate = torch.split(self.update_net(torch.cat([x, vec1], dim=-1)),
                              self.out_channels, dim=-1)
        if self.scalar_activation:
            x = F.silu(x)
        return x, gate.unsqueeze(1) * vec2


class DenoisingHead(nn.Module):
    """Two gated equivariant blocks ``H → H/2 → 1``: one noise vector per atom.

    The parameters are stored as ``output_network.0.*`` and ``output_network.1.*``, the layout
    of the upstream checkpoints' ``vec_out.*`` / ``output_model_noise.*`` tensors.

    Parameters
    ----------
    hidden_channels : int
        Width ``H`` of the encoder's features.
    """

    def __init__(self, hidden_channels: int) -> None:
        super().__init__()
        h = int(hidden_channels)
        self.output_network = nn.ModuleList([
            GatedEquivariantBlock(h, h // 2, scalar_activation=True),
            GatedEquivariantBlock(h // 2, 1),
        ])

    def forward(self, x: Tensor, vec: Tensor) -> Tensor:
        """Predicted (normalised) noise ``(N, 3)`` from ``x (N, H)`` and ``vec (N, 3, H)``."""
        for block in self.output_network:
            x, vec = block(x, vec)
        return vec.squeeze(-1)
