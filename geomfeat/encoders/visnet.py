"""ViSNet (Wang et al., Nat. Commun. 2024), built from PyTorch Geometric's ``ViSNetBlock``.

The checkpoint's ``representation_model.*`` tensors load into :class:`ViSNetEncoder` unchanged.
Only the neighbour search differs from PyG: edges come from :mod:`geomfeat.neighbors` (no
neighbour cap, no torch-cluster) instead of ``torch_geometric.nn.radius_graph``.
"""

from __future__ import annotations

from torch import Tensor
from torch_geometric.nn.models.visnet import ViSNetBlock

from ..neighbors import Edges
from .base import Encoder
from .layers import unit_vectors

__all__ = ["ViSNetEncoder"]


class ViSNetEncoder(ViSNetBlock, Encoder):
    """ViSNet representation block taking a precomputed neighbour list.

    Parameters
    ----------
    hidden_channels, num_layers, num_rbf, num_heads, lmax, vecnorm_type, trainable_vecnorm, max_z
        As in :class:`torch_geometric.nn.models.visnet.ViSNetBlock`.
    cutoff : float
        Cutoff of the radial basis and of the neighbour list in Å.
    """

    #: about 6200 bytes per edge in float32 (PyG's message passing; measured on an H200)
    bytes_per_edge = 6200

    def __init__(
        self,
        *,
        hidden_channels: int = 64,
        num_layers: int = 6,
        num_rbf: int = 64,
        cutoff: float = 7.5,
        num_heads: int = 8,
        lmax: int = 1,
        vecnorm_type: str | None = "max_min",
        trainable_vecnorm: bool = True,
        max_z: int = 100,
    ) -> None:
        super().__init__(
            lmax=lmax,
            vecnorm_type=vecnorm_type,
            trainable_vecnorm=trainable_vecnorm,
            num_heads=num_heads,
            num_layers=num_layers,
            hidden_channels=hidden_channels,
            num_rbf=num_rbf,
            cutoff=cutoff,
            max_z=max_z,
        )

    def forward(self, z: Tensor, edges: Edges) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        """Per-atom ``x (M, H)`` and ``vec (M, 3, H)``; see :meth:`Encoder.forward`."""
        edge_index, distance = edges.index, edges.length
        direction = self.sphere(unit_vectors(edges.vec, distance))

        x = self.embedding(z)
        rbf = self.distance_expansion(distance)
        x = self.neighbor_embedding(z, x, edge_index, distance, rbf)
        vec = x.new_zeros(x.size(0), (self.lmax + 1) ** 2 - 1, x.size(1))
        edge_attr = self.edge_embedding(edge_index, rbf, x)

        for layer in self.vis_mp_layers[:-1]:
            dx, dvec, dedge = layer(x, vec, edge_index, distance, edge_attr, direction)
            x, vec, edge_attr = x + dx, vec + dvec, edge_attr + dedge
        dx, dvec, _ = self.vis_mp_layers[-1](x, vec, edge_index, distance, edge_attr, direction)
        return self.out_norm(x + dx), self.vec_out_norm(vec + dvec)
