"""Optional fine-tuning: the last ``k`` interaction layers of an encoder trained with a VAMPNet.

geomfeat's encoders are frozen by default and stay so everywhere else. This module is the
explicit opt-in mode in which the top ``k`` interaction layers (and the output normalisation
after them) become trainable parameters of a VAMPNet lobe, while the layers below stay frozen.

The frozen part is run **once**: :class:`LayerCache` stores, for every frame, the full state the
upper layers read — per-atom features (ViSNet and ET: scalars ``x (N, H)`` and vectors
``vec (N, 3, H)``; TensorNet: rank-2 tensors ``X (N, 3, 3, H)``) and, per edge, the geometry
(length, unit vector; ViSNet also its evolving edge features ``f_ij (E, H)``). An epoch then
costs ``k`` message-passing layers (forward and backward) per frame instead of the whole
encoder; with ``k = 0`` the cache holds the final per-atom outputs and no encoder parameter is
trained (the frozen pipeline).

Frames are addressed by their index in the cache, so the usual time-lagged machinery works
unchanged: :meth:`LayerCache.frame_indices` gives one ``(T_i, 1)`` float32 array of indices per
trajectory, which goes through :func:`geomfeat.deeptime.train_val_split` /
:func:`~geomfeat.deeptime.data_loader` like any feature array, and :class:`FineTuneLobe`
(encoder top + pooling + standardisation + any lobe of :mod:`geomfeat.deeptime`) maps index
batches to VAMPNet outputs. :func:`finetune_vampnet` builds deeptime's
:class:`~deeptime.decomposition.deep.VAMPNet` (its VAMP-2 loss and training step) with a
separate learning rate for the encoder layers.

Example
-------
>>> featurizer = GeomFeaturizer("visnet-denali", select="heavy")                 # doctest: +SKIP
>>> cache = LayerCache.build(featurizer, [traj0, traj1], n_trainable=1)          # doctest: +SKIP
>>> train, val, _ = train_val_split(cache.frame_indices(), lagtime=10)           # doctest: +SKIP
>>> head = FineTuneEncoder(featurizer, cache)                                    # doctest: +SKIP
>>> head.fit_standardization(train_frames)                                       # doctest: +SKIP
>>> lobe = FineTuneLobe(head, MLPLobe(head.out_dim, 5, width=64))                # doctest: +SKIP
>>> vnet = finetune_vampnet(lobe, learning_rate=1e-3, encoder_learning_rate=1e-4)  # doctest: +SKIP
>>> vnet.fit(data_loader(train, 1024, shuffle=True), n_epochs=20)               # doctest: +SKIP

Supported encoders: ViSNet (``visnet-*``), TorchMD ET (``et-*``) and TensorNet
(``tensornet-*``); ``features`` scalar, invariant or equivariant; every ``pool``. Reduced
precision (``dtype`` bfloat16/float16/tf32) and multi-layer readouts are not supported here.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..encoders.base import Encoder, GraphState
from ..neighbors import radius_graph
from ..pooling import combine_features, pool_atoms

__all__ = [
    "SUPPORTED_ARCHITECTURES",
    "FineTuneEncoder",
    "FineTuneLobe",
    "LayerCache",
    "finetune_vampnet",
]

#: Architectures (registry keys) whose upper layers can be fine-tuned.
SUPPORTED_ARCHITECTURES = ("visnet", "et", "tensornet")


# --------------------------------------------------------------------------------------------
# the trainable upper part of an encoder
# --------------------------------------------------------------------------------------------

class _UpperLayers(nn.Module):
    """A copy of an encoder whose last ``k`` interaction layers and output block are trained.

    ``forward(state)`` continues a :class:`~geomfeat.encoders.base.GraphState` cached after the
    frozen layers with the encoder's own stages (:meth:`Encoder.interact`,
    :meth:`Encoder.readout`) and returns ``x (M, H)`` and ``vec (M, 3, H)``. Only the copy's
    upper layers and output block are trained (none for ``k = 0``); the encoder it was copied
    from is never modified.
    """

    def __init__(self, encoder: Encoder, n_trainable: int) -> None:
        super().__init__()
        self.encoder = copy.deepcopy(encoder)
        self.encoder.requires_grad_(False)
        if n_trainable > 0:
            for module in [*self.encoder.interaction_layers[-n_trainable:],
                           *self.encoder.readout_modules]:
                module.requires_grad_(True)

    def forward(self, state: GraphState) -> tuple[Tensor, Tensor]:
        return self.encoder.readout(self.encoder.run_layers(state))


# --------------------------------------------------------------------------------------------
# the cache of the frozen lower layers
# --------------------------------------------------------------------------------------------

def _check_featurizer(featurizer: Any) -> str:
    architecture = featurizer.card.architecture
    if architecture not in SUPPORTED_ARCHITECTURES:
        raise NotImplementedError(
            f"fine-tuning supports {', '.join(SUPPORTED_ARCHITECTURES)} encoders; "
            f"{featurizer.model!r} is a {architecture!r} model")
    if featurizer.dtype not in ("float32", "float64"):
        raise NotImplementedError(f"fine-tuning runs in float32 or float64, not dtype="
                                  f"{featurizer.dtype!r}")
    indices = tuple(getattr(featurizer, "layer_indices", ()))
    if indices and indices != (featurizer.n_layers - 1,):
        raise NotImplementedError(f"fine-tuning reads the last layer only (layers='last'), "
                                  f"not layers={featurizer.layers!r}")
    return architecture


class LayerCache:
    """The frozen lower layers' state of every frame of one or more trajectories.

    Build it with :meth:`build`. Frames of all trajectories are numbered consecutively
    (trajectory 0 first); :meth:`frame_indices` gives those numbers per trajectory.

    Attributes
    ----------
    n_trainable : int
        Upper interaction layers left to compute (0: the cache holds the encoder's outputs).
    n_layers : int
        Interaction layers of the encoder.
    nodes : dict of str to Tensor
        Per-atom state, each ``(F, N, ...)``.
    edges : dict of str to Tensor
        Per-edge state of all frames, concatenated ``(E_total, ...)``.
    edge_source, edge_target : Tensor, shape (E_total,), int64
        Atoms (0…N-1 within the frame) of every edge.
    edge_ptr : Tensor, shape (F + 1,), int64
        Edges of frame ``f`` are ``edge_ptr[f]:edge_ptr[f + 1]``.
    lengths : list of int
        Frames per trajectory.
    atomic_numbers, residues : ndarray, shape (N,)
        Of the selected atoms (residues: 0-based token index), as in the featurizer's reader.
    n_residues : int
    """

    def __init__(self, *, architecture: str, n_trainable: int, n_layers: int,
                 nodes: dict[str, Tensor], edges: dict[str, Tensor], edge_source: Tensor,
                 edge_target: Tensor, edge_ptr: Tensor, lengths: list[int],
                 atomic_numbers: np.ndarray, residues: np.ndarray, n_residues: int) -> None:
        self.architecture = architecture
        self.n_trainable, self.n_layers = n_trainable, n_layers
        self.nodes, self.edges = nodes, edges
        self.edge_source, self.edge_target, self.edge_ptr = edge_source, edge_target, edge_ptr
        self.lengths = lengths
        self.atomic_numbers, self.residues, self.n_residues = atomic_numbers, residues, n_residues

    @property
    def n_frames(self) -> int:
        return int(sum(self.lengths))

    @property
    def n_atoms(self) -> int:
        return len(self.atomic_numbers)

    @property
    def nbytes(self) -> int:
        """Memory held by the cache, in bytes."""
        tensors = [*self.nodes.values(), *self.edges.values(), self.edge_source,
                   self.edge_target, self.edge_ptr]
        return int(sum(t.numel() * t.element_size() for t in tensors))

    def frame_indices(self) -> list[np.ndarray]:
        """Cache index of every frame, one ``(T_i, 1)`` float32 array per trajectory.

        Float32 so that the arrays pass through :mod:`geomfeat.deeptime`'s datasets like
        features (exact up to 2²⁴ frames).
        """
        bounds = np.cumsum([0, *self.lengths])
        return [np.arange(a, b, dtype=np.float32)[:, None]
                for a, b in pairwise(bounds)]

    @classmethod
    @torch.no_grad()
    def build(cls, featurizer: Any, data: Any, n_trainable: int, *,
              batch_size: int | None = None) -> LayerCache:
        """Run the frozen lower layers of ``featurizer``'s encoder over every frame of ``data``.

        Parameters
        ----------
        featurizer : GeomFeaturizer
            Encoder, selection, periodic treatment and device to use (its ``pool``,
            ``reduce`` and ``features`` are used later by :class:`FineTuneEncoder`).
        data : trajectory or list of trajectories
            Anything :meth:`GeomFeaturizer.transform` takes (all with the same atoms).
        n_trainable : int
            Number ``k`` of upper interaction layers to leave for training
            (``0 <= k <= n_layers``).
        batch_size : int, optional
            Frames per encoder batch (default: the featurizer's choice).
        """
        architecture = _check_featurizer(featurizer)
        encoder = featurizer.encoder
        n_layers = encoder.num_layers
        if int(n_trainable) != n_trainable or not 0 <= n_trainable <= n_layers:
            raise ValueError(f"n_trainable must be an integer in 0..{n_layers} for "
                             f"{featurizer.model}, got {n_trainable}")
        n_trainable = int(n_trainable)
        device = featurizer.torch_device
        dtype = torch.float64 if featurizer.dtype == "float64" else torch.float32
        nodes: dict[str, list[Tensor]] = {}
        edges: dict[str, list[Tensor]] = {}
        src, trg, counts, lengths = [], [], [], []
        reference = None
        for item in data if isinstance(data, list) else [data]:
            reader = featurizer.reader(item)
            key = (reader.atomic_numbers.tolist(), reader.residues.tolist())
            if reference is None:
                reference = (reader, key)
            elif key != reference[1]:
                raise ValueError(f"{reader.source}: atoms or residues differ from those of the "
                                 "first trajectory")
            frames = reader.frame_indices(None, None, None)
            lengths.append(len(frames))
            for _, batch in _batches(featurizer, reader, frames, batch_size):
                pos = torch.tensor(batch.positions, dtype=dtype, device=device)
                box = (None if batch.boxes is None or not featurizer.pbc
                       else torch.tensor(batch.boxes, dtype=dtype, device=device))
                b, n = pos.shape[:2]
                z = torch.as_tensor(reader.atomic_numbers, device=device).repeat(b)
                graph = radius_graph(pos, encoder.cutoff, box=box)
                state = encoder.run_layers(encoder.initial_state(z, graph),
                                           n_layers - n_trainable)
                if n_trainable == 0:
                    x, vec = encoder.readout(state)
                    node_state, edge_state = {"x": x, "vec": vec}, {}
                else:
                    node_state, edge_state = state.nodes, state.edges
                for name, t in node_state.items():
                    nodes.setdefault(name, []).append(t.reshape(b, n, *t.shape[1:]).cpu())
                for name, t in edge_state.items():
                    edges.setdefault(name, []).append(t.cpu())
                frame_of_edge = graph.index[1] // n  # edges are ordered by frame
                counts.append(torch.bincount(frame_of_edge, minlength=b).cpu())
                src.append((graph.index[0] % n).cpu())
                trg.append((graph.index[1] % n).cpu())
        if reference is None or not lengths or sum(lengths) == 0:
            raise ValueError("no frames to cache")
        reader = reference[0]
        return cls(
            architecture=architecture, n_trainable=n_trainable, n_layers=n_layers,
            nodes={k: torch.cat(v) for k, v in nodes.items()},
            edges={k: torch.cat(v) for k, v in edges.items()},
            edge_source=torch.cat(src), edge_target=torch.cat(trg),
            edge_ptr=torch.cat([torch.zeros(1, dtype=torch.int64),
                                torch.cat(counts).cumsum(0)]),
            lengths=lengths, atomic_numbers=reader.atomic_numbers.copy(),
            residues=reader.residues.copy(), n_residues=len(reader.residue_labels))

    def gather(self, frames: Tensor, device: torch.device | None = None
               ) -> tuple[dict[str, Tensor], dict[str, Tensor], Tensor, Tensor]:
        """The cached state of ``frames`` as one batched graph.

        Parameters
        ----------
        frames : Tensor, shape (B,), int64
            Cache indices.

        Returns
        -------
        nodes : dict of str to Tensor
            Each ``(B * N, ...)``; node ``b * N + i`` is atom ``i`` of ``frames[b]``.
        edges : dict of str to Tensor
            Each ``(E_batch, ...)``.
        source, target : Tensor, shape (E_batch,), int64
            Batched node numbers.
        """
        frames = frames.to("cpu")
        n = self.n_atoms
        nodes = {k: v[frames].reshape(-1, *v.shape[2:]).to(device) for k, v in self.nodes.items()}
        starts, stops = self.edge_ptr[frames], self.edge_ptr[frames + 1]
        counts = stops - starts
        offsets = torch.cumsum(counts, 0) - counts
        position = torch.arange(int(counts.sum())) - torch.repeat_interleave(offsets, counts)
        ids = torch.repeat_interleave(starts, counts) + position
        shift = torch.repeat_interleave(torch.arange(len(frames)) * n, counts)
        edges = {k: v[ids].to(device) for k, v in self.edges.items()}
        source = (self.edge_source[ids] + shift).to(device)
        target = (self.edge_target[ids] + shift).to(device)
        return nodes, edges, source, target


def _batches(featurizer: Any, reader: Any, frames: range, batch_size: int | None):
    from ..frame_checks import check_box, check_finite

    if batch_size is None:
        batch_size = featurizer.resolve_batch_size(reader, frames)
    for batch in reader.iter_batches(batch_size, frames):
        check_finite(batch.positions, batch.frames, reader.source)
        if batch.boxes is not None and featurizer.pbc:
            check_box(batch.boxes, featurizer.card.cutoff, batch.frames, reader.source)
        yield batch.frames, batch


# --------------------------------------------------------------------------------------------
# trainable modules
# --------------------------------------------------------------------------------------------

class FineTuneEncoder(nn.Module):
    """Cached frozen layers + trainable upper layers + the featurizer's pooling, per frame index.

    Parameters
    ----------
    featurizer : GeomFeaturizer
        Supplies the encoder (whose upper layers are *copied*; it is never modified) and the
        readout: ``pool``, ``reduce``, ``features``.
    cache : LayerCache
        Built from the same featurizer; ``cache.n_trainable`` layers are trained.

    Shapes
    ------
    input: frame indices ``(B,)`` or ``(B, 1)`` (any dtype); output: ``(B, *frame_shape)``
    float32, the featurizer's frame shape, standardised per feature after
    :meth:`fit_standardization` (identity before).
    """

    def __init__(self, featurizer: Any, cache: LayerCache) -> None:
        super().__init__()
        architecture = _check_featurizer(featurizer)
        if architecture != cache.architecture:
            raise ValueError(f"the cache holds {cache.architecture} states, the featurizer is "
                             f"{architecture}")
        self.cache = cache
        self.pool, self.reduce, self.features = (featurizer.pool, featurizer.reduce,
                                                 featurizer.features)
        self.upper = _UpperLayers(featurizer.encoder, cache.n_trainable)
        self.n_frozen = cache.n_layers - cache.n_trainable
        self.register_buffer("residues", torch.as_tensor(cache.residues, dtype=torch.int64))
        dtype = next(self.upper.parameters()).dtype  # the encoder's
        self.register_buffer("mean", torch.zeros((), dtype=dtype))
        self.register_buffer("scale", torch.ones((), dtype=dtype))

    @property
    def n_trainable(self) -> int:
        return self.cache.n_trainable

    def embed(self, frames: Tensor) -> Tensor:
        """Unstandardised embeddings ``(B, *frame_shape)`` of cache frames ``frames``."""
        frames = frames.reshape(-1).to(torch.int64)
        device = self.residues.device
        nodes, edges, source, target = self.cache.gather(frames, device)
        dtype = self.scale.dtype  # VAMPNet casts the module (buffers included) to its dtype
        nodes = {k: v.to(dtype) for k, v in nodes.items()}
        edges = {k: v.to(dtype) for k, v in edges.items()}
        if self.n_trainable == 0:
            x, vec = nodes["x"], nodes["vec"]
        else:
            x, vec = self.upper(GraphState(nodes, edges, source, target, self.n_frozen))
        b, n = len(frames), self.cache.n_atoms
        x = x.reshape(b, n, *x.shape[1:])
        vec = vec.reshape(b, n, *vec.shape[1:])
        x = pool_atoms(x, self.pool, self.reduce, self.residues, self.cache.n_residues)
        vec = pool_atoms(vec, self.pool, self.reduce, self.residues, self.cache.n_residues)
        return combine_features(x, vec, self.features)

    @torch.no_grad()
    def fit_standardization(self, frames: Tensor | np.ndarray | Sequence[np.ndarray],
                            batch_size: int = 4096) -> FineTuneEncoder:
        """Standardise every output feature with the mean and sd over ``frames`` (training
        frames, at the current weights); kept fixed during training."""
        if not isinstance(frames, Tensor):
            arrays = frames if isinstance(frames, (list, tuple)) else [frames]
            frames = torch.as_tensor(np.concatenate([np.asarray(a).reshape(-1)
                                                     for a in arrays]))
        frames = frames.reshape(-1).to(torch.int64)
        was_training = self.training
        self.eval()
        out = torch.cat([self.embed(frames[i:i + batch_size]).double()
                         for i in range(0, len(frames), batch_size)])
        self.train(was_training)
        sd = out.std(0, unbiased=False)
        sd[sd < 1e-8] = 1.0
        self.mean = out.mean(0).to(self.scale.dtype)
        self.scale = (1.0 / sd).to(self.scale.dtype)
        return self

    def forward(self, frames: Tensor) -> Tensor:
        return (self.embed(frames) - self.mean) * self.scale

    def encoder_parameters(self) -> list[nn.Parameter]:
        """The trainable encoder parameters (empty for ``k = 0``)."""
        return [p for p in self.upper.parameters() if p.requires_grad]


class FineTuneLobe(nn.Module):
    """VAMPNet lobe on frame indices: :class:`FineTuneEncoder` followed by a feature lobe.

    Parameters
    ----------
    encoder : FineTuneEncoder
    lobe : nn.Module
        Any lobe taking the encoder's output, e.g. :class:`geomfeat.deeptime.MLPLobe`
        (``in_dim = prod(frame_shape)``) or :class:`~geomfeat.deeptime.MixerLobe` for residue
        tokens.
    """

    def __init__(self, encoder: FineTuneEncoder, lobe: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.lobe = lobe

    def forward(self, frames: Tensor) -> Tensor:
        return self.lobe(self.encoder(frames))


def finetune_vampnet(lobe: FineTuneLobe, *, learning_rate: float = 1e-3,
                     encoder_learning_rate: float | None = None, device: Any = None,
                     **kwargs: Any):
    """deeptime's :class:`~deeptime.decomposition.deep.VAMPNet` for a :class:`FineTuneLobe`.

    Adam with ``learning_rate`` for the lobe and ``encoder_learning_rate`` (default: 0.1 ×
    ``learning_rate``, the usual smaller step for pre-trained weights) for the trainable encoder
    layers. ``kwargs`` go to ``VAMPNet`` (score method, epsilon, ...).
    """
    from deeptime.decomposition.deep import VAMPNet

    if encoder_learning_rate is None:
        encoder_learning_rate = 0.1 * learning_rate
    vnet = VAMPNet(lobe=lobe, learning_rate=learning_rate, device=device, **kwargs)
    groups = [{"params": [p for p in lobe.lobe.parameters() if p.requires_grad],
               "lr": learning_rate}]
    encoder_params = lobe.encoder.encoder_parameters()
    if encoder_params:
        groups.append({"params": encoder_params, "lr": encoder_learning_rate})
    vnet._optimizer = torch.optim.Adam(groups)  # VAMPNet.optimizer has no setter
    return vnet
