"""Trajectory readers: one interface over mdtraj, MDAnalysis and plain arrays.

A reader holds an atom selection (atomic numbers, residue tokens, labels) and streams the
selected atoms' coordinates **in Å** in batches of frames. Units are converted here, at the
boundary: mdtraj stores nm (×10), MDAnalysis and plain arrays are already Å.

Selections (``select=``):

``"heavy"``
    every atom whose element is not hydrogen (decided on atomic numbers, identically for all
    toolkits; atoms without element, e.g. virtual sites, are left out);
``"all"``
    every atom (each must have an element);
any other string
    the input toolkit's own selection language (``Topology.select`` for mdtraj,
    ``select_atoms`` for MDAnalysis);
an integer array
    0-based indices into the input's atoms (for an AtomGroup, into the group).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .elements import atomic_number, check_atomic_numbers, guess_atomic_number
from .errors import InputError
from .sanity import check_roles, quiet_failed_readers, warn_if_truncated

__all__ = ["Batch", "Frames", "TrajectoryReader", "load_universe", "open_trajectory"]

Selection = str | Sequence[int] | np.ndarray


@dataclass
class Batch:
    """Coordinates of consecutive selected frames.

    Attributes
    ----------
    frames : range
        Frame numbers in the trajectory.
    positions : ndarray, shape (B, N, 3)
        Coordinates of the selected atoms in Å.
    boxes : ndarray, shape (B, 3, 3), or None
        Periodic box of each frame, box vectors as rows in Å; ``None`` without a unit cell.
    """

    frames: range
    positions: np.ndarray
    boxes: np.ndarray | None = None


class TrajectoryReader(ABC):
    """Selected atoms of a trajectory and a stream of their coordinates.

    Attributes
    ----------
    atomic_numbers : ndarray, shape (N,), int64
        Atomic numbers of the selected atoms.
    residues : ndarray, shape (N,), int64
        Token index ``0..R-1`` of each selected atom's residue, numbered in order of appearance.
    residue_labels : list of str
        ``R`` labels such as ``"ALA2"``.
    atom_labels : list of str
        ``N`` labels such as ``"ALA2:CA (atom 11)"`` for messages.
    source : str
        What was read, for messages.
    """

    atomic_numbers: np.ndarray
    residues: np.ndarray
    residue_labels: list[str]
    atom_labels: list[str]
    source: str

    @property
    def n_atoms(self) -> int:
        """Number of selected atoms ``N``."""
        return int(self.atomic_numbers.shape[0])

    @property
    @abstractmethod
    def n_frames_total(self) -> int:
        """Number of frames before slicing."""

    def frame_indices(self, start: int | None = None, stop: int | None = None,
                      step: int | None = None) -> range:
        """Frames that ``start:stop:step`` selects, as a ``range`` of frame numbers."""
        if step is not None and step < 1:
            raise InputError(f"stride/step must be a positive integer, got {step}")
        return range(self.n_frames_total)[start:stop:step]

    @abstractmethod
    def iter_batches(self, batch_size: int, frames: range) -> Iterator[Batch]:
        """Yield the ``frames`` in batches of at most ``batch_size``."""

    def _set_selection(self, z_all: np.ndarray, labels_all: list[str], residue_ids: np.ndarray,
                       residue_names: list[str], select: Selection, toolkit_select) -> np.ndarray:
        index = _resolve_selection(select, z_all, toolkit_select, self.source)
        z = z_all[index]
        labels = [labels_all[i] for i in index]
        check_atomic_numbers(z, labels, self.source)
        self.atomic_numbers = z.astype(np.int64)
        self.atom_labels = labels
        ids = residue_ids[index]
        unique, first = np.unique(ids, return_index=True)
        order = np.argsort(first)  # tokens numbered in order of first appearance
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        self.residues = rank[np.searchsorted(unique, ids)].astype(np.int64)
        self.residue_labels = [residue_names[index[first[k]]] for k in order]
        return index


def _resolve_selection(select: Selection, z_all: np.ndarray, toolkit_select, source: str
                       ) -> np.ndarray:
    n = z_all.shape[0]
    if isinstance(select, str):
        if select == "all":
            index = np.arange(n)
        elif select == "heavy":
            index = np.flatnonzero(z_all > 1)
        elif toolkit_select is None:
            raise InputError(
                f"selection string {select!r} needs a topology; plain arrays take 'heavy', 'all' "
                "or an index array"
            )
        else:
            try:
                index = np.asarray(toolkit_select(select), dtype=np.int64)
            except Exception as exc:
                raise InputError(f"invalid selection {select!r} for {source}: {exc}") from None
    else:
        index = np.asarray(select)
        if index.dtype == bool:
            raise InputError("select takes indices, not a boolean mask (use np.flatnonzero)")
        if index.ndim != 1 or not np.issubdtype(index.dtype, np.integer):
            raise InputError(
                f"select must be a string or a 1-D integer index array, got {select!r}")
        if index.size and (index.min() < 0 or index.max() >= n):
            raise InputError(f"selection index out of range for {source} with {n} atoms")
        index = index.astype(np.int64)
    if index.size == 0:
        raise InputError(f"selection {select!r} matches no atoms in {source}")
    return index


def _describe(obj: Any) -> str:
    filename = getattr(obj, "filename", None)
    return f"{type(obj).__name__} {filename}" if filename else type(obj).__name__


class MDTrajReader(TrajectoryReader):
    """Reader for an in-memory :class:`mdtraj.Trajectory` (coordinates nm → Å)."""

    def __init__(self, traj, select: Selection = "heavy") -> None:
        self.traj = traj
        self.source = f"mdtraj.Trajectory ({traj.n_frames} frames, {traj.n_atoms} atoms)"
        top = traj.topology
        atoms = list(top.atoms)
        z_all = np.array([_mdtraj_z(a) for a in atoms], dtype=np.int64)
        labels = [f"{a.residue}:{a.name} (atom {a.index})" for a in atoms]
        residue_ids = np.array([a.residue.index for a in atoms], dtype=np.int64)
        residue_names = [str(a.residue) for a in atoms]
        self.index = self._set_selection(z_all, labels, residue_ids, residue_names, select,
                                         top.select)

    @property
    def n_frames_total(self) -> int:
        return int(self.traj.n_frames)

    def iter_batches(self, batch_size, frames):
        for lo in range(0, len(frames), batch_size):
            chunk = frames[lo : lo + batch_size]
            part = slice(chunk.start, chunk.stop, chunk.step)
            xyz = self.traj.xyz[part][:, self.index]
            cells = self.traj.unitcell_vectors
            boxes = None if cells is None else np.asarray(cells[part], dtype=np.float64) * 10.0
            yield Batch(chunk, np.asarray(xyz, dtype=np.float64) * 10.0, boxes)  # nm → Å


def _mdtraj_z(atom) -> int:
    element = atom.element
    if element is None or element.atomic_number <= 0:
        return guess_atomic_number(atom.name)
    return int(element.atomic_number)


class MDAnalysisReader(TrajectoryReader):
    """Reader for an MDAnalysis ``Universe`` or ``AtomGroup`` (coordinates already Å)."""

    def __init__(self, obj, select: Selection = "heavy") -> None:
        group = obj.atoms  # Universe → all atoms; AtomGroup → itself
        self.universe = group.universe
        self.source = f"{_describe(self.universe.trajectory)} ({len(group)} atoms)"
        z_all = _mdanalysis_z(group)
        labels = [f"{a.resname}{a.resid}:{a.name} (atom {a.index})" for a in group]
        residue_ids = np.asarray(group.resindices, dtype=np.int64)
        residue_names = [f"{a.resname}{a.resid}" for a in group]
        index = self._set_selection(z_all, labels, residue_ids, residue_names, select,
                                    lambda s: _group_positions(group, group.select_atoms(s)))
        self.group = group[index]

    @property
    def n_frames_total(self) -> int:
        return int(self.universe.trajectory.n_frames)

    def iter_batches(self, batch_size, frames):
        trajectory = self.universe.trajectory
        for lo in range(0, len(frames), batch_size):
            chunk = frames[lo : lo + batch_size]
            positions = np.empty((len(chunk), len(self.group), 3))
            boxes: np.ndarray | None = np.empty((len(chunk), 3, 3))
            for k, ts in enumerate(trajectory[chunk.start : chunk.stop : chunk.step]):
                positions[k] = self.group.positions
                if boxes is not None:
                    box = ts.triclinic_dimensions
                    if box is None or not np.any(box):
                        boxes = None
                    else:
                        boxes[k] = box
            yield Batch(chunk, positions, boxes)


def _group_positions(group, subgroup) -> np.ndarray:
    """Positions of ``subgroup``'s atoms within ``group`` (0-based)."""
    where = {ix: k for k, ix in enumerate(group.indices)}
    return np.array([where[ix] for ix in subgroup.indices], dtype=np.int64)


def _mdanalysis_z(group) -> np.ndarray:
    try:
        symbols = np.asarray(group.elements, dtype=str)
    except Exception:  # NoDataError: the topology has no elements (GRO, many PSFs)
        symbols = np.full(len(group), "", dtype=str)
    z = np.array([atomic_number(s) for s in symbols], dtype=np.int64)
    missing = np.flatnonzero(z == 0)
    if missing.size:
        names = np.asarray(group.names)
        types = np.asarray(group.types) if hasattr(group, "types") else names
        guessed: dict[tuple[str, str], int] = {}
        for i in missing:
            key = (str(names[i]), str(types[i]))
            if key not in guessed:
                guessed[key] = guess_atomic_number(key[0]) or guess_atomic_number(key[1])
            z[i] = guessed[key]
    return z


@dataclass
class Frames:
    """In-memory frames without a toolkit.

    Attributes
    ----------
    positions : array, shape (F, N, 3) or (N, 3)
        Coordinates in Å.
    atomic_numbers : array of int, shape (N,)
        Elements of the atoms.
    residue_ids : array of int, shape (N,), optional
        Residue of every atom (needed for ``pool="residue"``).
    boxes : array, shape (F, 3, 3) or (3, 3), optional
        Periodic box of every frame (rows are box vectors, Å).
    """

    positions: np.ndarray
    atomic_numbers: np.ndarray
    residue_ids: np.ndarray | None = None
    boxes: np.ndarray | None = None


class ArrayReader(TrajectoryReader):
    """Reader for :class:`Frames` or ``(positions, atomic_numbers[, residue_ids])`` tuples (Å)."""

    def __init__(self, data: Frames | tuple, select: Selection = "heavy") -> None:
        if isinstance(data, tuple):
            if len(data) not in (2, 3):
                raise InputError("array input is (positions[F, N, 3] in Å, atomic_numbers[N]) "
                                 "or (positions, atomic_numbers, residue_ids[N])")
            data = Frames(*data)
        pos = np.asarray(data.positions)
        if pos.ndim == 2:
            pos = pos[None]
        z_all = np.asarray(data.atomic_numbers)
        if pos.ndim != 3 or pos.shape[-1] != 3:
            raise InputError(f"positions must have shape (F, N, 3) or (N, 3), got {pos.shape}")
        if z_all.ndim != 1 or not np.issubdtype(z_all.dtype, np.integer):
            raise InputError("atomic_numbers must be a 1-D integer array")
        if z_all.shape[0] != pos.shape[1]:
            raise InputError(f"positions have {pos.shape[1]} atoms but atomic_numbers has "
                             f"{z_all.shape[0]}")
        self.has_residues = data.residue_ids is not None
        residue_ids = (np.asarray(data.residue_ids, dtype=np.int64) if self.has_residues
                       else np.zeros(pos.shape[1], dtype=np.int64))
        if residue_ids.shape != z_all.shape:
            raise InputError("residue_ids must have one entry per atom")
        self.positions = pos
        self.boxes = None if data.boxes is None else np.broadcast_to(
            np.asarray(data.boxes, dtype=np.float64), (pos.shape[0], 3, 3))
        self.source = f"array input ({pos.shape[0]} frames, {pos.shape[1]} atoms)"
        labels = [f"atom {i} (Z={z})" for i, z in enumerate(z_all)]
        names = [f"residue {r}" for r in residue_ids]
        self.index = self._set_selection(z_all.astype(np.int64), labels, residue_ids, names,
                                         select, None)

    @property
    def n_frames_total(self) -> int:
        return int(self.positions.shape[0])

    def iter_batches(self, batch_size, frames):
        for lo in range(0, len(frames), batch_size):
            chunk = frames[lo : lo + batch_size]
            part = slice(chunk.start, chunk.stop, chunk.step)
            yield Batch(chunk, self.positions[part][:, self.index],
                        None if self.boxes is None else self.boxes[part])


def open_trajectory(obj: Any, select: Selection = "heavy") -> TrajectoryReader:
    """Wrap an mdtraj Trajectory, MDAnalysis Universe/AtomGroup or array tuple in a reader."""
    if isinstance(obj, TrajectoryReader):
        return obj
    if isinstance(obj, (tuple, Frames)):
        return ArrayReader(obj, select)
    module = type(obj).__module__.split(".")[0]
    if module == "mdtraj":
        return MDTrajReader(obj, select)
    if module == "MDAnalysis":
        return MDAnalysisReader(obj, select)
    raise InputError(
        f"cannot read {type(obj).__name__}: pass an mdtraj.Trajectory, an MDAnalysis Universe or "
        "AtomGroup, or a (positions_in_angstrom[F, N, 3], atomic_numbers[N]) tuple"
    )


def load_universe(trajectory: str | os.PathLike, topology: str | os.PathLike):
    """Open ``trajectory`` with ``topology`` as an MDAnalysis Universe, with readable errors.

    Raises
    ------
    InputError
        If a file is missing, empty or unreadable, the topology is a coordinate-only format
        (e.g. TRAJ and TOP swapped), or the files disagree on the number of atoms.

    Warns if an XTC file is truncated (bytes after its last complete frame).
    """
    import MDAnalysis as mda

    for path, what in ((topology, "topology"), (trajectory, "trajectory")):
        if not os.path.isfile(path):
            raise InputError(f"{what} file not found: {path}")
        if os.path.getsize(path) == 0:
            raise InputError(f"{what} file is empty: {path}")
    check_roles(trajectory, topology)
    message = None
    with quiet_failed_readers():  # a reader that failed to open must not print on collection
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                universe = mda.Universe(os.fspath(topology), os.fspath(trajectory))
        except Exception as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if message is not None:
        if "number of atoms" in message or "same number" in message:
            message = f"the files do not have the same number of atoms ({message})"
        raise InputError(f"cannot read trajectory {trajectory} with topology {topology}: "
                         f"{message}")
    warn_if_truncated(universe, trajectory)
    return universe
