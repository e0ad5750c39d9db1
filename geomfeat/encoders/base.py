"""The interface every encoder implements."""

from __future__ import annotations

import operator
from collections.abc import Sequence

from torch import Tensor, nn

from ..neighbors import Edges

__all__ = ["Encoder", "Layers", "resolve_layers"]

#: A readout's layers: ``"last"``, ``"all"``, one index or a sequence of indices (0-based,
#: negative counts from the last interaction layer).
Layers = str | int | Sequence[int]


def resolve_layers(layers: Layers, n_layers: int) -> tuple[int, ...]:
    """Explicit 0-based interaction-layer indices of a ``layers`` option.

    Parameters
    ----------
    layers : "last", "all", int or sequence of int
        ``"last"`` → ``(n_layers - 1,)``; ``"all"`` → ``(0, …, n_layers - 1)``; integers are
        0-based layer indices, negative ones count from the end (``-1`` is the last). Their
        order is kept (it is the order of the concatenated feature blocks).
    n_layers : int
        Number of interaction layers of the encoder.

    Raises
    ------
    ValueError
        For an unknown word, an index out of range, a repeated layer, or an empty list.
    """
    if isinstance(layers, str):
        if layers == "last":
            return (n_layers - 1,)
        if layers == "all":
            return tuple(range(n_layers))
        raise ValueError(f"unknown layers {layers!r}; give 'last', 'all' or layer indices "
                         f"(0 to {n_layers - 1}, negative from the end)")
    items = [layers] if hasattr(layers, "__index__") else list(layers)
    if not items:
        raise ValueError("layers is empty; give 'last', 'all' or layer indices")
    resolved = []
    for item in items:
        try:
            if isinstance(item, bool):
                raise TypeError
            index = operator.index(item)  # ints and numpy integers, not floats or strings
        except TypeError:
            raise ValueError(f"layers must be 'last', 'all' or integers, got {item!r}") from None
        if not -n_layers <= index < n_layers:
            raise ValueError(f"layer {index} does not exist: the encoder has {n_layers} "
                             f"interaction layers (0 to {n_layers - 1}, or -{n_layers} to -1)")
        resolved.append(index % n_layers)
    if len(set(resolved)) != len(resolved):
        raise ValueError(f"layers {items} name a layer twice (as resolved: {resolved})")
    return tuple(resolved)


class Encoder(nn.Module):
    """A frozen representation model: per-atom scalar and vector features from a geometry.

    Subclasses set :attr:`cutoff` (Å), :attr:`hidden_channels`, :attr:`num_layers` and
    :attr:`bytes_per_edge` and implement :meth:`forward`, including its ``layers`` readout
    (the per-atom outputs after chosen interaction layers; see each architecture's docstring
    for what "the output after layer i" is).
    Their parameter names are those of the checkpoints' ``representation_model.*`` tensors.
    """

    cutoff: float
    hidden_channels: int
    #: Number of interaction (message-passing) layers.
    num_layers: int
    #: Peak memory of the forward pass per edge in float32 (bytes), used for batch sizing
    #: (doubled for float64). Subclasses give their measured value; this default is cautious.
    bytes_per_edge: int = 6200

    def forward(self, z: Tensor, edges: Edges, layers: Layers | None = None
                ) -> tuple[Tensor, Tensor] | list[tuple[Tensor, Tensor]]:
        """Encode a batch of graphs.

        Parameters
        ----------
        z : Tensor, shape (M,), int64
            Atomic numbers of all ``M`` nodes of the batch (``0 < z < 100``).
        edges : Edges
            Neighbour list within :attr:`cutoff` (self-loops included), vectors in Å.
        layers : "last", "all", int or sequence of int, optional
            Return the outputs after these interaction layers (see :func:`resolve_layers`)
            as a list of ``(x, vec)`` pairs, in the order given. ``None`` (default): the
            single pair of the final output.

        Returns
        -------
        x : Tensor, shape (M, H)
            Rotation-invariant per-atom features.
        vec : Tensor, shape (M, 3, H)
            Rotation-equivariant per-atom vector features (Cartesian components on axis 1).

        With ``layers``, a list of such ``(x, vec)`` pairs, one per layer; the entry of the
        last layer is bit for bit the output without ``layers``.
        """
        raise NotImplementedError
