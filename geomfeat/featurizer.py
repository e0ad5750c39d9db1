"""``GeomFeaturizer``: frozen pre-trained encoder embeddings of MD frames, deeptime style.

Size: one public estimator class, about a third of it numpy docstrings; batch sizing, precision
modes and input checks already live in :mod:`~geomfeat.batching`, :mod:`~geomfeat.precision` and
:mod:`~geomfeat.frame_checks`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
import torch
from deeptime.base import Model, Transformer
from tqdm.auto import tqdm

from ._threads import auto_threads, torch_threads
from .batching import budget_bytes, frames_per_batch
from .devices import check_available, parse_device
from .encoders import ARCHITECTURES, Encoder, Layers, load_encoder, resolve_layers
from .encoders.layers import compile_mode, compile_on_cpu
from .errors import InputError, WeightsError
from .frame_checks import check_box, check_finite
from .localgraph import LocalGraphs, residue_local_graphs
from .neighbors import radius_graph
from .pooling import FEATURES, POOLS, REDUCES, combine_features, pool_atoms
from .precision import DTYPES as _DTYPES
from .precision import reduced_precision
from .registry import ModelCard, get_model_card, load_card
from .sanity import check_units as _check_units
from .trajectory import (
    Batch,
    Selection,
    TrajectoryReader,
    check_model_elements,
    open_trajectory,
    prefetched,
)

__all__ = ["GeomFeaturizer"]

#: Batches read ahead by a background thread while the encoder runs (0: read in line).
PREFETCH_BATCHES = 1
#: On the CPU, the edge messages are compiled (``torch.compile``, tens of seconds once per
#: process) for jobs of at least this many neighbour pairs (frames × pairs of the first frame);
#: see ``GEOMFEAT_COMPILE`` in :mod:`geomfeat.encoders.layers`.
CPU_COMPILE_MIN_EDGES = 5_000_000


class GeomFeaturizer(Transformer, Model):
    r"""Embed MD frames with a frozen pre-trained geometric GNN.

    Parameters
    ----------
    model : str or path
        Registered encoder name (see ``geomfeat.list_models()``), e.g. ``"visnet-denali"``; or
        a model card ``.json`` written by ``geomfeat pretrain`` (or the name of one in the
        cache's ``local-models`` folder). See also :meth:`from_checkpoint`.
    select : str or array of int
        Atoms to embed: ``"heavy"`` (default), ``"all"``, ``"solute"`` (no water or ions), a
        selection string in the input toolkit's language, or 0-based indices. See
        :mod:`geomfeat.trajectory`.
    heavy : bool
        Leave the hydrogens out of ``select`` (``select="protein", heavy=True``), decided on
        geomfeat's elements for every topology format.
    elements : sequence, mapping or path, optional
        Elements that override the topology's: one symbol or atomic number per atom of the
        input, or a mapping ``{"NAME" | "RESNAME:NAME" | "type:TYPE": "Zn"}`` (``"virtual"``
        drops the atom), or a file of ``KEY ELEMENT`` lines. See :mod:`geomfeat.elements`.
    allow_unseen_elements : bool
        Embed atoms of elements outside the model's pre-training set (``card.elements``; for
        OrbNet Denali H, Li, B, C, N, O, F, Na, Mg, Si, P, S, Cl, K, Ca, Br, I) instead of
        refusing them. Their embedding rows were never trained; the sidecar lists them.
    pool : {"graph", "residue", "atom", "residue-local"}
        One vector per frame, one token per residue of the selection, or one per atom.
        ``"residue-local"``: one token per residue computed from the residue's local graph
        (its atoms plus the selected atoms within the cutoff of them, embedded on their own)
        instead of the whole molecule; see :mod:`geomfeat.localgraph`. Costs about
        (atoms of a local graph) / (atoms) times ``R`` as much as ``"residue"``.
    reduce : {"sum", "mean"}
        How atoms are combined by ``pool="graph"`` / ``"residue"``.
    features : {"scalar", "invariant", "equivariant"}
        Scalar channels ``H``; scalars plus norms of the pooled vector channels ``2H``; or
        scalar and vector channels stacked ``(4, H)``. See :mod:`geomfeat.pooling`.
    layers : "last", "all", int or list of int
        Read out the encoder after these interaction layers (0-based, negative from the end):
        ``"last"`` (default, the encoder's final output), ``"all"``, or indices such as
        ``[0, 2, 5]``. ``S`` layers give ``S`` blocks of channels concatenated on the last
        axis in the order given (``S·H``, ``S·2H`` or ``(4, S·H)``). What each architecture's
        "output after layer i" is: ``docs/readouts.md``.
    batch_size : int, optional
        Frames per encoder batch (a positive integer). Default: chosen from the first frame's
        number of neighbour pairs so that a batch fits ``memory_budget``.
    memory_budget : float, optional
        GiB (a positive, finite number) that one batch may use for the encoder's temporaries
        when ``batch_size`` is not given. Default: 2 GiB on the CPU, 40 % of the GPU's memory
        on CUDA.
    device : str, optional
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``None`` (CUDA when available, else
        CPU). Checked when given; whether the device exists here is checked when the encoder
        is loaded (the process that runs it may be a Dask worker elsewhere).
    dtype : {"float32", "float64", "tf32", "bfloat16", "float16"}
        Precision of the encoder; outputs are always float32. ``"float32"`` (default) is full
        float32 (TF32 is never switched on behind your back); ``"float64"`` the reference
        precision. The others trade accuracy for speed and are opt-in only: ``"tf32"`` (CUDA
        only) runs float32 matrix products on TF32 tensor cores; ``"bfloat16"`` and
        ``"float16"`` run the encoder under ``torch.autocast`` (16-bit products, float32
        weights, neighbour lists and message sums). Their errors against the float64
        reference are in ``docs/performance.md`` (bfloat16 moves protein atom features by
        up to ~0.1).
    progress : bool
        Show a progress bar (frames/s) on stderr.
    pbc : bool
        Use periodic boundaries (minimum image) when the trajectory has a unit cell (default).
        ``False`` ignores the cell: pairs are then taken as the coordinates are stored, which is
        right only for molecules that are whole and not near their own images.
    check_units : bool
        Check on the first frame read that the coordinates look like Å (default): the median
        distance from an atom to its nearest neighbour must not be far below bond lengths
        (nm given as Å) nor, for ``"all"``/``"heavy"`` selections, far above (Å read as nm).
        See :func:`geomfeat.sanity.check_units`. ``False`` skips it.

    Notes
    -----
    Coordinates enter the encoder in Å (mdtraj's nm are converted). The neighbour list keeps
    every pair within the encoder's cutoff, self-loops included, with no cap on the number of
    neighbours. Output shapes per frame: ``(H)``, ``(2H)`` or ``(4, H)`` for graph pooling; a
    leading ``R`` (residues) or ``N`` (atoms) axis for residue and atom pooling; ``S`` layers
    multiply the last axis by ``S``.

    Examples
    --------
    >>> featurizer = GeomFeaturizer("visnet-denali")            # doctest: +SKIP
    >>> embeddings = featurizer.transform(traj)                 # doctest: +SKIP
    >>> embeddings.shape                                        # doctest: +SKIP
    (1000, 64)
    >>> TICA(lagtime=10).fit(featurizer.transform([traj1, traj2]))  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str | os.PathLike | ModelCard = "visnet-denali",
        *,
        select: Selection = "heavy",
        heavy: bool = False,
        elements: Any = None,
        allow_unseen_elements: bool = False,
        pool: str = "graph",
        reduce: str = "sum",
        features: str = "scalar",
        layers: Layers = "last",
        batch_size: int | None = None,
        memory_budget: float | None = None,
        device: str | None = None,
        dtype: str = "float32",
        progress: bool = False,
        pbc: bool = True,
        check_units: bool = True,
    ) -> None:
        self.card = get_model_card(model)
        for name, value, choices in (("pool", pool, POOLS), ("reduce", reduce, REDUCES),
                                     ("features", features, FEATURES), ("dtype", dtype, _DTYPES)):
            if value not in choices:
                raise ValueError(f"unknown {name} {value!r}; choose from {', '.join(choices)}")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(
                batch_size, Integral) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if memory_budget is not None and (isinstance(memory_budget, bool) or not isinstance(
                memory_budget, Real) or not math.isfinite(memory_budget) or memory_budget <= 0):
            raise ValueError(f"memory_budget must be a positive number of GiB, got "
                             f"{memory_budget!r}")
        parse_device(device)  # an unknown device fails here, not deep inside PyTorch
        resolve_layers(layers, int(self.card.hyperparameters["num_layers"]))  # fail early
        self.model = self.card.name
        self.select = select
        self.heavy = heavy
        self.elements = elements
        self.allow_unseen_elements = allow_unseen_elements
        self.pool = pool
        self.reduce = reduce
        self.features = features
        self.layers = layers
        self.batch_size = batch_size
        self.memory_budget = memory_budget
        self.device = device
        self.dtype = dtype
        if dtype == "tf32" and self.torch_device.type != "cuda":
            raise ValueError("dtype='tf32' (TF32 tensor-core matrix products) needs a CUDA device")
        self.progress = progress
        self.pbc = pbc
        self.check_units = check_units
        self._encoder: Encoder | None = None
        self._compile_cpu = False  # set per job by iter_embeddings (see CPU_COMPILE_MIN_EDGES)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, **kwargs: Any) -> GeomFeaturizer:
        """A featurizer for a trained checkpoint: its model card, or the ``.pth`` next to one.

        Parameters
        ----------
        path : path
            ``NAME.json`` (model card) or ``NAME.pth`` with ``NAME.json`` beside it, as written
            by ``geomfeat pretrain``. The checkpoint is verified against the card's SHA-256 and
            loaded strictly.
        **kwargs
            Other :class:`GeomFeaturizer` parameters.
        """
        path = Path(path)
        card = path if path.suffix == ".json" else path.with_suffix(".json")
        if not card.is_file():
            raise WeightsError(f"no model card {card.name} next to {path}: a checkpoint needs "
                               "its card (written by geomfeat pretrain) for its architecture")
        return cls(load_card(card), **kwargs)

    # ----------------------------------------------------------------------------- encoder
    @property
    def torch_device(self) -> torch.device:
        """The device the encoder runs on."""
        if self.device is None:
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    @property
    def encoder(self) -> Encoder:
        """The frozen encoder, fetched and loaded on first use."""
        if self._encoder is None:
            check_available(self.device)
            self._encoder = load_encoder(self.card, device=self.torch_device,
                                         dtype=_DTYPES[self.dtype], progress=self.progress)
        return self._encoder

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_encoder"] = None  # reloaded from the cache where unpickled
        return state

    # ----------------------------------------------------------------------------- shapes
    @property
    def n_layers(self) -> int:
        """Number of interaction layers of the encoder."""
        return int(self.card.hyperparameters["num_layers"])

    @property
    def layer_indices(self) -> tuple[int, ...]:
        """``layers`` as explicit 0-based indices, in output order."""
        return resolve_layers(self.layers, self.n_layers)

    def reader(self, data: Any) -> TrajectoryReader:
        """A :class:`~geomfeat.trajectory.TrajectoryReader` over ``data`` with this selection."""
        reader = open_trajectory(data, self.select, heavy=self.heavy, elements=self.elements)
        reader.unseen_elements = check_model_elements(reader, self.card,
                                                      self.allow_unseen_elements)
        if (self.pool in ("residue", "residue-local")
                and getattr(reader, "has_residues", True) is False):
            raise InputError(f"pool={self.pool!r} needs residues: pass an mdtraj Trajectory, an "
                             "MDAnalysis Universe, or (positions, atomic_numbers, residue_ids)")
        return reader

    def frame_shape(self, reader: TrajectoryReader) -> tuple[int, ...]:
        """Shape of the embedding of one frame of ``reader``."""
        h = self.card.hidden_channels * len(self.layer_indices)
        tail = {"scalar": (h,), "invariant": (2 * h,), "equivariant": (4, h)}[self.features]
        lead = {"graph": (), "residue": (len(reader.residue_labels),),
                "residue-local": (len(reader.residue_labels),),
                "atom": (reader.n_atoms,)}[self.pool]
        return (*lead, *tail)

    def budget_bytes(self) -> float:
        """Memory one batch may use, in bytes (see ``memory_budget``)."""
        return budget_bytes(self.memory_budget, self.torch_device)

    def auto_batch_size(self, edges_per_frame: float, atoms_per_frame: float = 0.0) -> int:
        """Frames per batch that fit :meth:`budget_bytes` at ``edges_per_frame`` edges a frame
        (see :func:`geomfeat.batching.frames_per_batch`)."""
        itemsize = 8 if self.dtype == "float64" else 4  # 16-bit modes: as float32
        return frames_per_batch(self.budget_bytes(),
                                ARCHITECTURES[self.card.architecture].bytes_per_edge, itemsize,
                                len(self.layer_indices) - 1, self.card.hidden_channels,
                                edges_per_frame, atoms_per_frame)

    def resolve_batch_size(self, reader: TrajectoryReader, frames: range) -> int:
        """Frames per batch for ``frames`` of ``reader``: ``batch_size``, or sized to the budget.

        Without a fixed ``batch_size`` the neighbour pairs of the first frame (no encoder
        needed) set it through :meth:`auto_batch_size`. Batches then start at multiples of the
        result, so a frame range that starts at such a multiple is embedded in exactly the
        batches, and to exactly the bits, of a run over all ``frames``.
        """
        if self.batch_size is not None:
            return int(self.batch_size)
        if len(frames) == 0:
            return 1
        edges = self._first_frame_edges(reader, frames)
        if self.pool == "residue-local":  # the encoder sees the residues' local graphs
            edges = residue_local_graphs(edges, torch.as_tensor(reader.residues), 1,
                                         len(reader.residue_labels)).edges
        return self.auto_batch_size(edges.index.shape[1], edges.num_nodes)

    # ----------------------------------------------------------------------------- deeptime API
    def fit(self, data: Any = None, **kwargs: Any) -> GeomFeaturizer:
        """No-op (the encoder is pre-trained); returns ``self`` for deeptime pipelines."""
        return self

    def fit_transform(self, data: Any, **kwargs: Any):
        """Same as :meth:`transform`."""
        return self.fit(data).transform(data, **kwargs)

    def fetch_model(self) -> GeomFeaturizer:
        """The featurizer is its own model (deeptime convention)."""
        return self

    def transform(self, data: Any, *, start: int | None = None, stop: int | None = None,
                  stride: int | None = None):
        """Embed every selected frame.

        Parameters
        ----------
        data : trajectory or list of trajectories
            An ``mdtraj.Trajectory`` (nm), an MDAnalysis ``Universe``/``AtomGroup`` (Å), a
            ``(positions[F, N, 3] in Å, atomic_numbers[N][, residue_ids[N]])`` tuple, or a list
            of these.
        start, stop, stride : int, optional
            Frame slice applied while reading.

        Returns
        -------
        ndarray or list of ndarray, float32
            ``(F, *frame_shape)`` per trajectory; a list for a list input.
        """
        if isinstance(data, list):
            return [self.transform(d, start=start, stop=stop, stride=stride) for d in data]
        reader = self.reader(data)
        frames = reader.frame_indices(start, stop, stride)
        out = np.empty((len(frames), *self.frame_shape(reader)), dtype=np.float32)
        done = 0
        for _, batch in self.iter_embeddings(reader, frames):
            out[done : done + len(batch)] = batch
            done += len(batch)
        return out

    def iter_embeddings(self, reader: TrajectoryReader, frames: range, *,
                        batch_size: int | None = None) -> Iterator[tuple[range, np.ndarray]]:
        """Stream ``(frame_numbers, embeddings)`` batches of ``reader``'s ``frames``.

        ``batch_size`` overrides :meth:`resolve_batch_size` (a worker embedding part of a
        trajectory is given the batch size of the whole). The next batch is read and checked
        in a background thread while the encoder works on the current one
        (:data:`PREFETCH_BATCHES`; not for a single batch, where there is nothing to overlap);
        batches come out in order, and a reading error is raised only after every batch before
        it has been yielded.
        """
        if batch_size is None:
            batch_size = self.resolve_batch_size(reader, frames)
        self._compile_cpu = self._long_cpu_job(reader, frames)
        with tqdm(total=len(frames), unit="frame", disable=not self.progress,
                  desc=self.model, dynamic_ncols=True) as bar:
            depth = PREFETCH_BATCHES if len(frames) > batch_size else 0
            for batch in prefetched(self._checked_batches(reader, frames, batch_size), depth):
                boxes = batch.boxes if self.pbc else None
                yield batch.frames, self.embed_positions(batch.positions, reader, boxes)
                bar.update(len(batch.frames))

    def _long_cpu_job(self, reader: TrajectoryReader, frames: range) -> bool:
        """Whether ``frames`` make a CPU job long enough to compile the edge messages for."""
        if self.torch_device.type != "cpu" or len(frames) == 0 or compile_mode() != "auto":
            return False
        edges = self._first_frame_edges(reader, frames)
        return len(frames) * edges.index.shape[1] >= CPU_COMPILE_MIN_EDGES

    def _first_frame_edges(self, reader: TrajectoryReader, frames: range):
        """Neighbour pairs of the first of ``frames``, after the checks of every batch.

        A non-finite frame or a box too small or singular gets its proper message (with the
        ``--no-pbc`` hint) here rather than an error from inside :func:`radius_graph`.
        """
        first = next(reader.iter_batches(1, frames[:1]))
        check_finite(first.positions, first.frames, reader.source)
        boxes = first.boxes if self.pbc else None
        if boxes is not None:
            check_box(boxes, self.card.cutoff, first.frames, reader.source)
        pos = torch.tensor(first.positions)  # one frame: copy (the reader's may be read-only)
        return radius_graph(pos, self.card.cutoff,
                            box=None if boxes is None else torch.tensor(boxes))

    def _checked_batches(self, reader: TrajectoryReader, frames: range, batch_size: int
                         ) -> Iterator[Batch]:
        """``reader``'s batches, each checked for non-finite coordinates and too small boxes (and
        the first frame for implausible units)."""
        for k, batch in enumerate(reader.iter_batches(batch_size, frames)):
            check_finite(batch.positions, batch.frames, reader.source)
            if k == 0 and self.check_units:
                _check_units(batch.positions[0], self.select, reader.source,
                             batch.frames[0], None if batch.boxes is None or not self.pbc
                             else batch.boxes[0])
            if self.pbc and batch.boxes is not None:
                check_box(batch.boxes, self.card.cutoff, batch.frames, reader.source)
            yield batch

    def embed_positions(self, positions: np.ndarray, reader: TrajectoryReader,
                        boxes: np.ndarray | None = None) -> np.ndarray:
        """Embed one batch of ``reader``'s atoms.

        Parameters
        ----------
        positions : ndarray, shape (B, N, 3)
            Coordinates in Å.
        reader : TrajectoryReader
            Source of the atomic numbers and residues.
        boxes : ndarray, shape (B, 3, 3), optional
            Periodic boxes (rows are box vectors, Å) for minimum-image neighbour lists.
        """
        with torch_threads(auto_threads(self.torch_device.type)):  # unless the caller chose
            return self._embed_positions(positions, reader, boxes)

    @torch.inference_mode()
    def _embed_positions(self, positions: np.ndarray, reader: TrajectoryReader,
                         boxes: np.ndarray | None) -> np.ndarray:
        encoder = self.encoder
        device, dtype = self.torch_device, _DTYPES[self.dtype]
        pos = torch.tensor(positions, dtype=dtype, device=device)  # copies: inputs may be read-only
        box = None if boxes is None else torch.tensor(boxes, dtype=dtype, device=device)
        n_frames, n_atoms = pos.shape[:2]
        z = torch.as_tensor(reader.atomic_numbers, device=device).repeat(n_frames)
        edges = radius_graph(pos, encoder.cutoff, box=box)
        residues = torch.as_tensor(reader.residues, device=device)
        n_res = len(reader.residue_labels)
        local = None
        if self.pool == "residue-local":
            local = residue_local_graphs(edges, residues, n_frames, n_res)
            z, edges = z[local.atom], local.edges
        with reduced_precision(self.dtype, device), compile_on_cpu(self._compile_cpu):
            readouts = encoder(z, edges, layers=self.layer_indices)
        blocks = []
        for x, vec in readouts:  # one block of channels per layer, each pooled as one output
            x, vec = x.to(dtype), vec.to(dtype)  # 16-bit modes: pool in float32
            if local is not None:
                x, vec = (_pool_local(t, local, self.reduce, n_frames, n_res) for t in (x, vec))
            else:
                x = x.view(n_frames, n_atoms, -1)
                vec = vec.view(n_frames, n_atoms, 3, -1)
                x = pool_atoms(x, self.pool, self.reduce, residues, n_res)
                vec = pool_atoms(vec, self.pool, self.reduce, residues, n_res)
            blocks.append(combine_features(x, vec, self.features))
        out = blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=-1)
        return out.float().cpu().numpy()


def _pool_local(t: torch.Tensor, local: LocalGraphs, reduce: str, n_frames: int,
                n_residues: int) -> torch.Tensor:
    """Tokens ``(B, R, ...)`` from local-graph node features ``(K, ...)``: each residue's own
    atoms of its own graph, pooled as ``pool="residue"`` pools a frame's atoms."""
    tokens = pool_atoms(t[local.own].unsqueeze(0), "residue", reduce, local.graph[local.own],
                        n_frames * n_residues)
    return tokens.view(n_frames, n_residues, *t.shape[1:])
