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

from ..encoders.base import Encoder
from ..neighbors import Edges, radius_graph
from ..pooling import combine_features, pool_atoms

__all__ = [
    "SUPPORTED_ARCHITECTURES",
    "FineTuneEncoder",
    "FineTuneLobe",
    "LayerCache",
    "finetune_vampnet",
    "pairs_of",
    "train_with_early_stopping",
    "vamp2",
]

#: Architectures (registry keys) whose upper layers can be fine-tuned.
SUPPORTED_ARCHITECTURES = ("visnet", "et", "tensornet")


# --------------------------------------------------------------------------------------------
# architecture adapters: frozen lower part and trainable upper part of each encoder
# --------------------------------------------------------------------------------------------

def _layers(encoder: Encoder, architecture: str) -> nn.ModuleList:
    if architecture == "visnet":
        return encoder.vis_mp_layers
    if architecture == "et":
        return encoder.attention_layers
    if architecture == "tensornet":
        return encoder.layers
    raise NotImplementedError(
        f"fine-tuning is implemented for {', '.join(SUPPORTED_ARCHITECTURES)} encoders, not "
        f"{architecture!r}")


def _lower_state(encoder: Encoder, architecture: str, z: Tensor, edges: Edges, n_frozen: int
                 ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Per-node and per-edge state after the first ``n_frozen`` interaction layers.

    Mirrors the encoders' own ``forward`` up to that layer (same modules, same order).
    """
    from ..encoders.layers import unit_vectors

    distance = edges.length
    if architecture == "visnet":
        from ..encoders.visnet import vis_mp_layer

        edge_index = edges.index
        direction = encoder.sphere(unit_vectors(edges.vec, distance))
        x = encoder.embedding(z)
        rbf = encoder.distance_expansion(distance)
        x = encoder.neighbor_embedding(z, x, edge_index, distance, rbf)
        vec = x.new_zeros(x.size(0), (encoder.lmax + 1) ** 2 - 1, x.size(1))
        edge_attr = encoder.edge_embedding(edge_index, rbf, x)
        source, target = edge_index
        for layer in encoder.vis_mp_layers[:n_frozen]:
            dx, dvec, dedge = vis_mp_layer(layer, x, vec, source, target, distance, edge_attr,
                                           direction)
            x, vec = x + dx, vec + dvec
            if dedge is not None:
                edge_attr = edge_attr + dedge
        nodes = {"x": x, "vec": vec}
        per_edge = {"distance": distance, "direction": direction}
        if n_frozen < len(encoder.vis_mp_layers):  # the last layer does not read edge features
            per_edge["edge_attr"] = edge_attr
        return nodes, per_edge
    if architecture == "et":
        source, target = edges.index[0], edges.index[1]
        rbf = encoder.distance_expansion(distance)
        envelope = encoder.distance_expansion.cutoff_fn(distance)
        direction = unit_vectors(edges.vec, distance)
        x = encoder.embedding(z)
        vec = x.new_zeros(x.size(0), 3, x.size(1))
        for layer in encoder.attention_layers[:n_frozen]:
            dx, dvec = layer(x, vec, source, target, envelope, rbf, direction)
            x, vec = x + dx, vec + dvec
        return {"x": x, "vec": vec}, {"distance": distance, "direction": direction}
    if architecture == "tensornet":
        from ..encoders.tensornet import compose

        source, target = edges.index[0], edges.index[1]
        rbf = encoder.distance_expansion(distance)
        unit = unit_vectors(edges.vec, distance)
        x = compose(encoder.tensor_embedding(z, source, target, distance, unit, rbf))
        for layer in encoder.layers[:n_frozen]:
            x = layer(x, source, target, distance, rbf)
        return {"x": x}, {"distance": distance}
    _layers(encoder, architecture)  # raises NotImplementedError
    raise AssertionError


class _UpperLayers(nn.Module):
    """Copies of an encoder's last ``k`` interaction layers and its output block.

    ``forward(nodes, edges, source, target)`` continues :func:`_lower_state` and returns the
    encoder's outputs ``x (M, H)`` and ``vec (M, 3, H)``. Only the copies are trained; the
    encoder the copies came from is never modified.
    """

    def __init__(self, encoder: Encoder, architecture: str, n_trainable: int) -> None:
        super().__init__()
        layers = _layers(encoder, architecture)
        n_frozen = len(layers) - n_trainable
        self.architecture = architecture
        self.layers = copy.deepcopy(layers[n_frozen:])
        if architecture == "visnet":
            self.out_norm = copy.deepcopy(encoder.out_norm)
            self.vec_out_norm = copy.deepcopy(encoder.vec_out_norm)
        elif architecture == "et":
            self.distance_expansion = copy.deepcopy(encoder.distance_expansion)
            self.out_norm = copy.deepcopy(encoder.out_norm)
        else:
            self.distance_expansion = copy.deepcopy(encoder.distance_expansion)
            self.linear = copy.deepcopy(encoder.linear)
            self.out_norm = copy.deepcopy(encoder.out_norm)
        # k = 0: the output block is the frozen encoder's, not trained either
        self.requires_grad_(n_trainable > 0)

    def forward(self, nodes: dict[str, Tensor], edges: dict[str, Tensor], source: Tensor,
                target: Tensor) -> tuple[Tensor, Tensor]:
        distance = edges["distance"]
        if self.architecture == "visnet":
            from ..encoders.visnet import vis_mp_layer

            x, vec = nodes["x"], nodes["vec"]
            edge_attr = edges.get("edge_attr")
            for layer in self.layers:
                dx, dvec, dedge = vis_mp_layer(layer, x, vec, source, target, distance,
                                               edge_attr, edges["direction"])
                x, vec = x + dx, vec + dvec
                if dedge is not None:
                    edge_attr = edge_attr + dedge
            return self.out_norm(x), self.vec_out_norm(vec)
        if self.architecture == "et":
            x, vec = nodes["x"], nodes["vec"]
            rbf = self.distance_expansion(distance)
            envelope = self.distance_expansion.cutoff_fn(distance)
            for layer in self.layers:
                dx, dvec = layer(x, vec, source, target, envelope, rbf, edges["direction"])
                x, vec = x + dx, vec + dvec
            return self.out_norm(x), vec
        from torch.nn import functional as F

        from ..encoders.tensornet import AXIAL, ISO, NORM_WEIGHT, SYM, _constant, decompose

        x = nodes["x"]
        rbf = self.distance_expansion(distance)
        for layer in self.layers:
            x = layer(x, source, target, distance, rbf)
        parts = decompose(x)
        weighted = parts.square() * _constant(NORM_WEIGHT, parts).unsqueeze(-1)
        norms = torch.cat((weighted[:, ISO].sum(dim=1), weighted[:, AXIAL].sum(dim=1),
                           weighted[:, SYM].sum(dim=1)), dim=-1)
        return F.silu(self.linear(self.out_norm(norms))), parts[:, AXIAL].contiguous()


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
        n_layers = len(_layers(encoder, architecture))
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
                if n_trainable == 0:
                    x, vec = encoder(z, graph)
                    node_state, edge_state = {"x": x, "vec": vec}, {}
                else:
                    node_state, edge_state = _lower_state(encoder, architecture, z, graph,
                                                          n_layers - n_trainable)
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
    from ..featurizer import _check_box, _check_finite

    if batch_size is None:
        batch_size = featurizer.resolve_batch_size(reader, frames)
    for batch in reader.iter_batches(batch_size, frames):
        _check_finite(batch.positions, batch.frames, reader.source)
        if batch.boxes is not None and featurizer.pbc:
            _check_box(batch.boxes, featurizer.card.cutoff, batch.frames, reader.source)
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
        self.upper = _UpperLayers(featurizer.encoder, architecture, cache.n_trainable)
        self.register_buffer("residues", torch.as_tensor(cache.residues, dtype=torch.int64))
        dtype = next(self.upper.parameters()).dtype
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
            x, vec = self.upper(nodes, edges, source, target)
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


def pairs_of(pieces: Sequence[np.ndarray], lagtime: int) -> tuple[Tensor, Tensor]:
    """Time-lagged pairs ``(x_t, x_{t+lag})`` inside every piece (none across pieces).

    Works for features and for the ``(T, 1)`` frame-index arrays of
    :meth:`LayerCache.frame_indices` alike; returns two float32 tensors.
    """
    x0 = [p[:-lagtime] for p in pieces if len(p) > lagtime]
    xt = [p[lagtime:] for p in pieces if len(p) > lagtime]
    if not x0:
        raise ValueError(f"no piece is longer than the lag time {lagtime}")
    as_tensor = lambda xs: torch.from_numpy(  # noqa: E731
        np.ascontiguousarray(np.concatenate(xs), dtype=np.float32))
    return as_tensor(x0), as_tensor(xt)


@torch.no_grad()
def vamp2(module: nn.Module, pairs: tuple[Tensor, Tensor], *, epsilon: float = 1e-6,
          batch_size: int = 8192) -> float:
    """deeptime's VAMP-2 (regularised mode, as in training) of ``module``'s outputs on
    ``pairs``, all pairs in one covariance estimate (outputs computed in batches)."""
    from deeptime.decomposition.deep import vamp_score

    was_training = module.training
    module.eval()
    out = [torch.cat([module(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
           for x in pairs]
    module.train(was_training)
    return float(vamp_score(out[0], out[1], method="VAMP2", mode="regularize",
                            epsilon=epsilon))


def train_with_early_stopping(vnet: Any, module: nn.Module, train: tuple[Tensor, Tensor],
                              validation: tuple[Tensor, Tensor], *, batch_size: int = 512,
                              steps_per_epoch: int = 50, max_epochs: int = 60,
                              patience: int = 12, lr_patience: int = 4,
                              lr_factor: float = 0.5, min_lr: float = 1e-6,
                              min_improvement: float = 1e-4, seed: int = 0) -> dict[str, Any]:
    """Train a deeptime VAMPNet, choosing the epoch by validation VAMP-2.

    An epoch is ``steps_per_epoch`` mini-batches drawn from the reshuffled training pairs,
    then one validation score (all validation pairs at once). Every learning rate of the
    optimizer is multiplied by ``lr_factor`` after ``lr_patience`` epochs without a better
    score; training stops after ``patience`` such epochs. The weights of ``module`` (the lobe:
    for a :class:`FineTuneLobe` the trainable encoder layers included) at the best validation
    epoch are restored.

    Returns
    -------
    dict
        ``val_vamp2`` (best), ``best_epoch``, ``epochs``, ``val_curve``, ``seconds``,
        ``seconds_per_step``.
    """
    import copy as _copy
    import time

    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        vnet.optimizer, mode="max", factor=lr_factor, patience=lr_patience, min_lr=min_lr)
    dataset = torch.utils.data.TensorDataset(*train)
    size = min(batch_size, len(dataset))
    sampler = torch.utils.data.RandomSampler(dataset, num_samples=steps_per_epoch * size,
                                             generator=torch.Generator().manual_seed(seed))
    loader = torch.utils.data.DataLoader(
        dataset, sampler=torch.utils.data.BatchSampler(sampler, size, drop_last=False),
        batch_size=None)
    best, best_epoch, best_state, curve = -np.inf, 0, None, []
    t0, train_seconds, epoch = time.perf_counter(), 0.0, 0
    for epoch in range(1, max_epochs + 1):
        t1 = time.perf_counter()
        vnet.fit(loader, n_epochs=1)
        train_seconds += time.perf_counter() - t1
        score = vamp2(module, validation, epsilon=vnet.epsilon)
        score = score if np.isfinite(score) else -np.inf
        curve.append(round(score, 5))
        sched.step(score)
        if score > best + min_improvement:
            best, best_epoch = score, epoch
            best_state = _copy.deepcopy(module.state_dict())
        elif epoch - best_epoch >= patience:
            break
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return {"val_vamp2": float(best), "best_epoch": best_epoch, "epochs": epoch,
            "val_curve": curve, "seconds": round(time.perf_counter() - t0, 2),
            "seconds_per_step": train_seconds / max(1, epoch * steps_per_epoch)}
