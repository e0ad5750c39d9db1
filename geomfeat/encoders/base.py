"""The interface every encoder implements."""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from ..neighbors import Edges

__all__ = ["Encoder", "GraphState", "Layers", "resolve_layers"]

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


@dataclass
class GraphState:
    """A batch of graphs between two interaction layers: everything the next layer reads.

    Attributes
    ----------
    nodes : dict of str to Tensor
        Per-node streams, each ``(M, ...)``: ViSNet and ET ``x (M, H)`` and ``vec (M, 3, H)``
        (ViSNet: ``(M, 3, H)`` for its lmax = 1); TensorNet ``X (M, 3, 3, H)``.
    edges : dict of str to Tensor
        Per-edge inputs of the layers, each ``(E, ...)``: always ``distance (E,)`` in Å; ViSNet
        also ``direction (E, 3)`` and, while a layer that reads them is left, its evolving edge
        features ``edge_attr (E, H)``; ET ``direction (E, 3)`` (unit vectors).
    source, target : Tensor, shape (E,), int64
        Nodes of every edge (messages flow from ``source`` to ``target``).
    layer : int
        Interaction layers applied so far (0: the embedding only).
    """

    nodes: dict[str, Tensor]
    edges: dict[str, Tensor]
    source: Tensor
    target: Tensor
    layer: int = 0


class Encoder(nn.Module):
    """A frozen representation model: per-atom scalar and vector features from a geometry.

    Subclasses set :attr:`cutoff` (Å), :attr:`hidden_channels`, :attr:`num_layers` and
    :attr:`bytes_per_edge`, and implement the three stages that :meth:`forward` chains:
    :meth:`initial_state` (embedding), :meth:`interact` (interaction layers, one
    :class:`GraphState` after each) and :meth:`readout` (the output block, also applied to the
    state after an inner layer for the ``layers`` readouts; see each architecture's docstring).
    The stages let other code start or stop at any layer with the encoder's own modules
    (fine-tuning caches the state below the trained layers).
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
        keep = None if layers is None else resolve_layers(layers, self.num_layers)
        last = self.initial_state(z, edges)
        outputs: dict[int, tuple[Tensor, Tensor]] = {}
        for state in self.interact(last):
            if keep is not None and state.layer - 1 in keep:
                outputs[state.layer - 1] = self.readout(state)
            last = state
        if keep is None:
            return self.readout(last)
        return [outputs[i] for i in keep]

    def initial_state(self, z: Tensor, edges: Edges) -> GraphState:
        """The state before the first interaction layer (atom and edge embeddings).

        Parameters are those of :meth:`forward`.
        """
        raise NotImplementedError

    def interact(self, state: GraphState, stop: int | None = None) -> Iterator[GraphState]:
        """Apply interaction layers ``state.layer`` … ``stop - 1`` (default: to the last).

        Yields the state after each layer (``layer`` counts the layers applied); ``state``
        itself is not modified.
        """
        raise NotImplementedError

    def readout(self, state: GraphState) -> tuple[Tensor, Tensor]:
        """Per-atom ``x (M, H)`` and ``vec (M, 3, H)`` of a state (the output block)."""
        raise NotImplementedError

    def run_layers(self, state: GraphState, stop: int | None = None) -> GraphState:
        """The state after layer ``stop - 1`` (default: the last), from ``state``."""
        last = state
        for last in self.interact(state, stop):  # noqa: B007 (keeps the last)
            pass
        return last

    @property
    def interaction_layers(self) -> nn.ModuleList:
        """The interaction layers, in order (``len == num_layers``)."""
        raise NotImplementedError

    @property
    def readout_modules(self) -> list[nn.Module]:
        """The modules of :meth:`readout` (the output block)."""
        raise NotImplementedError

    def _stop(self, state: GraphState, stop: int | None) -> int:
        stop = self.num_layers if stop is None else int(stop)
        if not state.layer <= stop <= self.num_layers:
            raise ValueError(f"cannot run layers {state.layer} to {stop - 1} of an encoder with "
                             f"{self.num_layers} interaction layers")
        return stop
