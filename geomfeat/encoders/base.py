"""The interface every encoder implements."""

from __future__ import annotations

from torch import Tensor, nn

from ..neighbors import Edges

__all__ = ["Encoder"]


class Encoder(nn.Module):
    """A frozen representation model: per-atom scalar and vector features from a geometry.

    Subclasses set :attr:`cutoff` (Å), :attr:`hidden_channels` and :attr:`bytes_per_edge` and
    implement :meth:`forward`.
    Their parameter names are those of the checkpoints' ``representation_model.*`` tensors.
    """

    cutoff: float
    hidden_channels: int
    #: Peak memory of the forward pass per edge in float32 (bytes), used for batch sizing
    #: (doubled for float64). Subclasses give their measured value; this default is cautious.
    bytes_per_edge: int = 6200

    def forward(self, z: Tensor, edges: Edges) -> tuple[Tensor, Tensor]:
        """Encode a batch of graphs.

        Parameters
        ----------
        z : Tensor, shape (M,), int64
            Atomic numbers of all ``M`` nodes of the batch (``0 < z < 100``).
        edges : Edges
            Neighbour list within :attr:`cutoff` (self-loops included), vectors in Å.

        Returns
        -------
        x : Tensor, shape (M, H)
            Rotation-invariant per-atom features.
        vec : Tensor, shape (M, 3, H)
            Rotation-equivariant per-atom vector features (Cartesian components on axis 1).
        """
        raise NotImplementedError
