"""Trajectory readers: one interface over mdtraj, MDAnalysis and plain arrays.

A reader holds an atom selection (atomic numbers, residue tokens, labels) and streams the
selected atoms' coordinates **in Å** in batches of frames. Units are converted here, at the
boundary: mdtraj stores nm (×10), MDAnalysis and plain arrays are already Å.

Selections (``select=``):

``"heavy"``
    every atom whose element is not hydrogen;
``"all"``
    every atom;
``"solute"``
    every atom outside water and monatomic-ion residues (protein, nucleic acids, ligands,
    lipids);
any other string
    the input toolkit's own selection language (``Topology.select`` for mdtraj,
    ``select_atoms`` for MDAnalysis);
an integer array
    0-based indices into the input's atoms (for an AtomGroup, into the group).

``heavy=True`` then leaves out the hydrogens of any of these (``select="protein", heavy=True``).
Keywords and ``heavy`` are decided on geomfeat's own element column
(:mod:`geomfeat.elements`), identically for every toolkit and topology format. Virtual sites
(TIP4P ``MW``, lone pairs, massless particles) are never embedded: a selection that includes
them loses them with a warning. Of atoms with alternate locations (PDB altlocs), the first atom
listed of each name at each residue position is kept (mdtraj's rule), on both paths.

On the MDAnalysis path, what its readers leave out of some formats is read by
:mod:`geomfeat.formats` so that both paths agree: a multi-model PDB's single CRYST1, an Amber
restart's box line, an XTC file's cut-off last frame (left out, with a warning).

Size: three readers (mdtraj, MDAnalysis, arrays) behind one interface, with the selection
and element resolution they share, the MDAnalysis readers' file quirks and the universe
loader; it could be split into one module per toolkit (readers/mdtraj.py, ...), which was left
for a later change because several in-flight changes edit these readers (issue 21).
"""

from __future__ import annotations

import gc
import os
import queue
import re
import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from .element_checks import (
    check_atomic_numbers,
    describe_atoms,
    element_counts,
    overruled_counts,
)
from .element_context import mdtraj_virtual_marks
from .elements import (
    VIRTUAL,
    ElementOverride,
    Resolution,
    atomic_number,
    resolve_elements,
    symbol,
)
from .errors import InputError, InputWarning
from .formats import (
    AMBER_RESTART_EXTENSIONS,
    AltlocChoice,
    amber_restart_cell,
    amber_restart_format,
    check_mol2_molecules,
    complete_frames,
    dummy_cell_density,
    header_cell,
    mdtraj_altlocs,
)
from .sanity import check_roles, quiet_failed_readers, warn_if_truncated

__all__ = ["Batch", "Frames", "TrajectoryReader", "check_model_elements", "load_universe",
           "open_trajectory", "prefetched"]

Selection = str | Sequence[int] | np.ndarray
T = TypeVar("T")


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

    #: What the selection left out on purpose, recorded in the sidecar.
    dropped: dict[str, int]
    #: How the unit cell is used: ``"none"``, ``"trajectory"`` or why it is ignored.
    box: str = "none"

    def summary(self) -> dict[str, Any]:
        """Element counts of the embedded atoms, what was left out and the box rule (sidecar)."""
        return {"elements": element_counts(self.atomic_numbers),
                "unseen_elements": list(getattr(self, "unseen_elements", [])),
                "dropped": dict(getattr(self, "dropped", {"virtual_sites": 0, "altlocs": 0})),
                "overruled_elements": dict(getattr(self, "overruled", {})),
                "box": self.box}

    def _set_selection(self, res: Resolution, labels_all: list[str], keys_all: list[str],
                       residue_ids: np.ndarray, residue_names: list[str], select: Selection,
                       toolkit_select, heavy: bool = False,
                       excluded: np.ndarray | None = None) -> np.ndarray:
        index = _resolve_selection(select, res, toolkit_select, self.source)
        self.overruled = overruled_counts(index, res, keys_all)
        if self.overruled:
            warnings.warn(f"{self.source}: atom names overrule the elements stored for them: "
                          + ", ".join(f"{k} ×{v}" for k, v in self.overruled.items()),
                          InputWarning, stacklevel=4)
        virtual = index[res.kind[index] == VIRTUAL]
        altloc = (index[excluded[index] & (res.kind[index] != VIRTUAL)]
                  if excluded is not None else index[:0])
        if virtual.size:
            warnings.warn(f"{self.source}: {virtual.size} virtual site(s) (massless or dummy "
                          "particles) are never embedded and were left out: "
                          f"{describe_atoms(virtual, labels_all, keys_all)}", InputWarning,
                          stacklevel=4)
        if altloc.size:
            warnings.warn(f"{self.source}: {altloc.size} atom(s) of other alternate locations "
                          "(altlocs) were left out; the first location listed of each atom is "
                          "kept",
                          InputWarning, stacklevel=4)
        keep = res.kind[index] != VIRTUAL
        if excluded is not None:
            keep &= ~excluded[index]
        index = index[keep]
        if heavy or (isinstance(select, str) and select == "heavy"):
            index = index[res.z[index] != 1]
        if index.size == 0:
            raise InputError(f"selection {select!r}{' with heavy=True' if heavy else ''} matches "
                             f"no atoms in {self.source}")
        solvent = res.solvent[index]
        if isinstance(select, str) and select in ("heavy", "all") and solvent.any() and \
                not solvent.all():  # solute and solvent together
            n_solvent = int(res.solvent[index].sum())
            warnings.warn(f"{self.source}: select={select!r} includes {n_solvent} water and ion "
                          f"atom(s) of {index.size}; for the solute only use select='solute' "
                          "with heavy=True (command line: --select solute --heavy)",
                          InputWarning, stacklevel=4)
        z = res.z[index]
        labels = [labels_all[i] for i in index]
        check_atomic_numbers(z, labels, self.source, res.kind[index],
                             [keys_all[i] for i in index], res.coarse_note)
        self.dropped = {"virtual_sites": int(virtual.size), "altlocs": int(altloc.size)}
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


#: Selection keywords evaluated on geomfeat's element column.
KEYWORDS = ("all", "heavy", "solute")


def _resolve_selection(select: Selection, res: Resolution, toolkit_select, source: str
                       ) -> np.ndarray:
    n = res.z.shape[0]
    if isinstance(select, str):
        if select in ("all", "heavy"):
            index = np.arange(n)
        elif select == "solute":
            index = np.flatnonzero(~res.solvent)
        elif toolkit_select is None:
            raise InputError(
                f"selection string {select!r} needs a topology; plain arrays take 'heavy', 'all' "
                "or an index array"
            )
        else:
            try:
                index = np.asarray(toolkit_select(select), dtype=np.int64)
            except Exception as exc:
                raise InputError(f"invalid selection {select!r} for {source}: "
                                 f"{_selection_problem(exc)}") from None
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


def _selection_problem(exc: Exception) -> str:
    """One line saying what is wrong with a selection string (the toolkits' words are terse)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "'None'" in text or "end of text" in text:  # MDAnalysis / mdtraj (pyparsing)
        return "the selection ends too early (an unclosed parenthesis or a dangling operator?)"
    found = re.search(r"found (.*?\(at char \d+\))", text)  # pyparsing lists every keyword
    if found:
        return f"unexpected {found.group(1)}"
    return text if len(text) <= 200 else text[:200] + "..."


def check_model_elements(reader: TrajectoryReader, card, allow: bool = False) -> list[str]:
    """Refuse atoms of elements outside ``card.elements`` (the pre-training set).

    Returns the symbols of such elements that ``allow`` lets through (for the sidecar).

    Raises
    ------
    InputError
        If any selected atom's element is outside the set and ``allow`` is false; the message
        names the atoms.
    """
    known = {atomic_number(s) for s in getattr(card, "elements", ())}
    if not known:
        return []
    outside = np.flatnonzero(~np.isin(reader.atomic_numbers, list(known)))
    if outside.size == 0:
        return []
    unseen = sorted({int(z) for z in reader.atomic_numbers[outside]})
    symbols = [symbol(z) for z in unseen]
    if allow:
        return symbols
    keys = [f"{symbol(int(z))} {lab.split(' (atom')[0].split(':')[-1]}" for z, lab in
            zip(reader.atomic_numbers, reader.atom_labels, strict=True)]
    raise InputError(
        f"{outside.size} selected atom(s) of {reader.source} are {'/'.join(symbols)}, outside "
        f"{card.name}'s pre-training elements ({', '.join(card.elements)}): "
        f"{describe_atoms(outside, reader.atom_labels, keys)}; leave them out with select=, or "
        "embed them anyway with allow_unseen_elements=True (--allow-unseen-elements; their "
        "embedding rows were never trained)")


def _describe(obj: Any) -> str:
    filename = getattr(obj, "filename", None)
    return f"{type(obj).__name__} {filename}" if filename else type(obj).__name__


class MDTrajReader(TrajectoryReader):
    """Reader for an in-memory :class:`mdtraj.Trajectory` (coordinates nm → Å).

    mdtraj fills in elements itself, from masses (PSF) or names (GRO, PDB without an element
    column), and does not say which; they are therefore only a last hint, used where geomfeat's
    name table has no answer and the symbol begins the atom name (:mod:`geomfeat.elements`).
    """

    def __init__(self, traj, select: Selection = "heavy", *, heavy: bool = False,
                 elements=None) -> None:
        self.traj = traj
        self.source = f"mdtraj.Trajectory ({traj.n_frames} frames, {traj.n_atoms} atoms)"
        top = traj.topology
        atoms = list(top.atoms)
        # mdtraj's "virtual" element is also its answer for names it cannot guess (GRO): a mark
        # only on names it would have guessed (a massless "H"); other sites go by their names
        hint = np.array([0 if a.element is None else max(int(a.element.atomic_number), 0)
                         for a in atoms], dtype=np.int64)
        names = [a.name for a in atoms]
        marks = mdtraj_virtual_marks(names, [a.element is not None and a.element.atomic_number
                                             == 0 for a in atoms])
        residue_ids = np.array([a.residue.index for a in atoms], dtype=np.int64)
        res = resolve_elements(names, [a.residue.name for a in atoms], residue_ids, hint=hint,
                               virtual=marks, override=ElementOverride.from_user(elements),
                               source=self.source,
                               positions=traj.xyz[0] * 10.0 if traj.n_frames else None)
        labels = [f"{a.residue}:{a.name} (atom {a.index})" for a in atoms]
        keys = [f"{a.residue.name}:{a.name}" for a in atoms]
        residue_names = [str(a.residue) for a in atoms]
        self.index = self._set_selection(res, labels, keys, residue_ids, residue_names, select,
                                         top.select, heavy)
        if traj.unitcell_vectors is not None:
            self.box = "trajectory"
            if traj.n_frames == 1:
                self.box = "used: one frame with a unit cell (pbc=False if it is a crystal cell)"
                warnings.warn(f"{self.source}: one frame with a unit cell, used as a periodic box; "
                              "if it is a crystal cell (PDB CRYST1) rather than an MD box, pass "
                              "pbc=False (mdtraj does not keep the file format)", InputWarning,
                              stacklevel=3)

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


#: MDAnalysis readers of single structures whose cell is a crystal cell (PDB CRYST1).
_CRYSTAL_READERS = ("PDBReader", "PQRReader", "PDBQTReader", "PDBxReader", "MMCIFReader",
                    "MMTFReader")


class MDAnalysisReader(TrajectoryReader):
    """Reader for an MDAnalysis ``Universe`` or ``AtomGroup`` (coordinates already Å).

    Elements come from the file where it stores them (``elements`` read, not guessed, by
    MDAnalysis: PDB element column, TPR and PRMTOP atomic numbers, mol2; DMS atomic numbers),
    else from geomfeat's name table. A single-structure PDB's CRYST1 cell is a crystal cell, not
    an MD box: it is ignored with a warning (``box`` says so in the sidecar). A multi-frame GRO
    file, of which MDAnalysis reads only the first frame, is read in full. A multi-model PDB's
    one CRYST1 and an Amber ASCII restart's box line, which MDAnalysis does not read, are used;
    an XTC file's last frame cut off inside its body is left out with a warning (``truncated``
    in the sidecar); a mol2 file of different molecules is refused (:mod:`geomfeat.formats`).
    """

    def __init__(self, obj, select: Selection = "heavy", *, heavy: bool = False,
                 elements=None) -> None:
        group = obj.atoms  # Universe → all atoms; AtomGroup → itself
        self.universe = group.universe
        trajectory = getattr(self.universe, "_trajectory", None)
        what = (_describe(trajectory) if trajectory is not None
                else f"topology {getattr(self.universe, 'filename', '')}".strip())
        self.source = f"{what} ({len(group)} atoms)"
        self._complete: int | None = None  # complete frames, where the reader counts a cut one
        self._cell: np.ndarray | None = None  # the file's cell where MDAnalysis read none
        self.truncated: str | None = None
        if trajectory is not None:
            self._read_file_extras(trajectory)
        res = _mdanalysis_resolution(group, elements, self.source)
        resnames = _attr(group, "resnames")
        resids = _attr(group, "resids")
        names = _attr(group, "names")
        atom_res = [f"{r}{i}" if r is not None else f"residue {i}" for r, i in
                    zip(resnames if resnames is not None else [None] * len(group),
                        resids if resids is not None else group.resindices, strict=True)]
        if names is not None:
            labels = [f"{r}:{nm} (atom {ix})" for r, nm, ix in
                      zip(atom_res, names, group.indices, strict=True)]
            keys = [f"{r}:{nm}" for r, nm in
                    zip(resnames if resnames is not None else [""] * len(group), names,
                        strict=True)]
        else:  # e.g. LAMMPS data: atoms are known by their type only
            keys = _type_labels(group)
            labels = [f"{k} (atom {ix})" for k, ix in zip(keys, group.indices, strict=True)]
        residue_ids = np.asarray(group.resindices, dtype=np.int64)
        altlocs = _altlocs(group, self.source)
        if altlocs is not None:  # mdtraj's residues: one per position, whatever the location
            residue_ids = altlocs.position
            _, first = np.unique(altlocs.position, return_index=True)
            atom_res = [atom_res[first[p]] for p in altlocs.position]
        index = self._set_selection(res, labels, keys, residue_ids, atom_res, select,
                                    lambda s: _group_positions(group, group.select_atoms(s)),
                                    heavy, None if altlocs is None else altlocs.drop)
        self.group = group[index]
        self._memory = _multiframe_gro(trajectory, len(self.universe.atoms))
        self.box = "none"
        if trajectory is not None and (self.universe.dimensions is not None
                                       or self._cell is not None):
            self.box = "trajectory"
            if type(trajectory).__name__ in _CRYSTAL_READERS and trajectory.n_frames == 1:
                self.box = "ignored: CRYST1 cell of a single-structure PDB"
                warnings.warn(f"{self.source}: the CRYST1 cell of a single-structure PDB is a "
                              "crystal cell, not an MD box, and is not used as periodic "
                              "boundaries (to use it: universe.transfer_to_memory())",
                              InputWarning, stacklevel=3)
            elif type(trajectory).__name__ == "PDBReader":
                self._drop_dummy_cell(trajectory)

    def _drop_dummy_cell(self, trajectory) -> None:
        """Ignore a multi-model PDB's cell that is too small for its atoms, as mdtraj does."""
        cell = trajectory.ts.triclinic_dimensions
        if cell is None or not np.any(cell):
            cell = self._cell
        if cell is None:
            return
        density = dummy_cell_density(cell, len(self.universe.atoms))
        if density is not None:
            self.box = (f"ignored: CRYST1 cell of {density:.0f} atoms/nm³, a placeholder "
                        "(as mdtraj reads it)")
            warnings.warn(f"{self.source}: the CRYST1 cell holds {density:.0f} atoms per nm³, "
                          "far denser than matter: a placeholder, not used as periodic "
                          "boundaries (as mdtraj discards it)", InputWarning, stacklevel=4)

    def _read_file_extras(self, trajectory) -> None:
        """What MDAnalysis's reader leaves out of this file (:mod:`geomfeat.formats`): a
        multi-model PDB's header cell, an Amber restart's box, an XTC file's cut-off frame;
        and a mol2 file whose molecules differ is refused."""
        kind = type(trajectory).__name__
        filename = getattr(trajectory, "filename", None)
        if filename is None or not os.path.isfile(str(filename)):
            return
        if kind == "PDBReader" and trajectory.n_frames > 1:
            self._cell = header_cell(filename)
        elif kind == "INPReader":
            self._cell = amber_restart_cell(filename)
        elif kind == "MOL2Reader":
            check_mol2_molecules(filename)
        truncation = complete_frames(trajectory, filename)
        if truncation is not None:
            self.truncated = truncation.message(filename)
            if truncation.cut_frame:
                self._complete = truncation.complete
            _warn_once(trajectory, self.truncated)

    def summary(self) -> dict[str, Any]:
        """As :meth:`TrajectoryReader.summary`, and how a truncated file ends."""
        summary = super().summary()
        if self.truncated is not None:
            summary["truncated"] = self.truncated
        return summary

    @property
    def n_frames_total(self) -> int:
        if self._memory is not None:
            return int(self._memory[0].shape[0])
        if self._complete is not None:
            return self._complete
        return int(self.universe.trajectory.n_frames)

    def frame_box(self, ts) -> np.ndarray | None:
        """The periodic box (rows, Å) of the current frame ``ts`` as this reader uses it.

        ``None`` where the cell is not used (a lone PDB's crystal cell, no cell); the file's
        own cell where MDAnalysis read none (:meth:`_read_file_extras`). A frame without a
        cell in a file that has one gets a box of NaN, an error when periodic boundaries are
        used (never silently none for some batches).
        """
        if self.box == "none" or self.box.startswith("ignored"):
            return None
        box = ts.triclinic_dimensions
        if box is None or not np.any(box):
            box = self._cell
        if box is None:
            return np.full((3, 3), np.nan)
        return np.asarray(box, dtype=np.float64)

    def iter_batches(self, batch_size, frames):
        if self._memory is not None:
            yield from self._memory_batches(batch_size, frames)
            return
        trajectory = self.universe.trajectory
        use_box = self.box != "none" and not self.box.startswith("ignored")
        for lo in range(0, len(frames), batch_size):
            chunk = frames[lo : lo + batch_size]
            positions = np.empty((len(chunk), len(self.group), 3))
            boxes: np.ndarray | None = np.empty((len(chunk), 3, 3)) if use_box else None
            read = 0
            try:
                for k, ts in enumerate(trajectory[chunk.start : chunk.stop : chunk.step]):
                    if k >= len(chunk):
                        break
                    positions[k] = self.group.positions
                    if boxes is not None:
                        boxes[k] = self.frame_box(ts)
                    read = k + 1
            except (OSError, ValueError, EOFError) as exc:
                raise InputError(f"frame {chunk[read]} of {self.source} cannot be read "
                                 f"({_first_line(exc)}); the file may be truncated") from None
            if read < len(chunk):  # never hand on rows that were not read
                raise InputError(f"frame {chunk[read]} of {self.source} cannot be read: the "
                                 "trajectory ends before it (truncated?)")
            yield Batch(chunk, positions, boxes)

    def _memory_batches(self, batch_size, frames):
        xyz, cells = self._memory
        ix = self.group.indices
        for lo in range(0, len(frames), batch_size):
            chunk = frames[lo : lo + batch_size]
            part = slice(chunk.start, chunk.stop, chunk.step)
            boxes = None if cells is None else np.asarray(cells[part], dtype=np.float64)
            yield Batch(chunk, np.asarray(xyz[part][:, ix], dtype=np.float64), boxes)


def _group_positions(group, subgroup) -> np.ndarray:
    """Positions of ``subgroup``'s atoms within ``group`` (0-based)."""
    where = {ix: k for k, ix in enumerate(group.indices)}
    return np.array([where[ix] for ix in subgroup.indices], dtype=np.int64)


def _attr(group, name: str):
    """``group.<name>`` as an array, or ``None`` where the topology has no such attribute."""
    try:
        return np.asarray(getattr(group, name))
    except Exception:  # NoDataError (an AttributeError): e.g. LAMMPS data has no names
        return None


def _type_labels(group) -> list[str]:
    types = _attr(group, "types")
    return [f"type:{t}" for t in types] if types is not None else ["?"] * len(group)


def _read_attributes(universe) -> set[str]:
    """Topology attributes MDAnalysis read from the file (not guessed)."""
    topology = universe._topology
    read = getattr(topology, "read_attributes", None)
    if read is None:
        return {a.attrname for a in topology.attrs}
    return {a.attrname for a in read}


def _mdanalysis_resolution(group, elements, source: str) -> Resolution:
    read = _read_attributes(group.universe)
    trusted = None
    if "elements" in read:
        trusted = np.array([atomic_number(s) for s in np.asarray(group.elements, dtype=str)],
                           dtype=np.int64)
    elif "atomnums" in read:  # DMS
        trusted = np.asarray(group.atomnums, dtype=np.int64)
    virtual = None
    if "masses" in read:  # a mass of 0 read from the file marks a virtual site
        virtual = np.asarray(group.masses) == 0.0
    names = _attr(group, "names")
    override = ElementOverride.from_user(elements)
    if names is None and override is None and (trusted is None or not (trusted > 0).all()):
        raise InputError(f"{source} has no atom names and no elements (e.g. LAMMPS data): give "
                         "the elements, elements=[...] per atom or {'type:1': 'C', ...} "
                         "(command line: --elements FILE)")
    types = _attr(group, "types")
    return resolve_elements(names, _attr(group, "resnames"), np.asarray(group.resindices),
                            trusted=trusted, virtual=virtual,
                            types=None if types is None else types.astype(str),
                            override=override, source=source,
                            positions=_attr(group, "positions"))


def _altlocs(group, source: str) -> AltlocChoice | None:
    """mdtraj's choice among alternate locations (:func:`geomfeat.formats.mdtraj_altlocs`);
    ``None`` without altlocs. Warns about positions that hold different residues."""
    altlocs = _attr(group, "altLocs")
    if altlocs is None or not np.any(altlocs != ""):
        return None
    choice = mdtraj_altlocs(np.asarray(group.names), altlocs, _attr(group, "resnames"),
                            np.asarray(group.resids), _attr(group, "icodes"),
                            _chains(group))
    if choice.mixed:
        warnings.warn(f"{source}: {len(choice.mixed)} residue position(s) hold different "
                      f"residues in different alternate locations: {'; '.join(choice.mixed[:3])}"
                      f"{'; ...' if len(choice.mixed) > 3 else ''}; as mdtraj reads it, each "
                      "atom name's first location is kept (edit the file or select= to choose "
                      "another residue)", InputWarning, stacklevel=4)
    return choice


def _chains(group) -> np.ndarray | None:
    """Chain of every atom: chain ID and segment, where the topology has them."""
    chains, segids = _attr(group, "chainIDs"), _attr(group, "segids")
    if chains is None or segids is None:
        return chains if chains is not None else segids
    return np.char.add(np.char.add(chains.astype(str), ":"), segids.astype(str))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _warn_once(trajectory, message: str) -> None:
    """Warn ``message`` once per MDAnalysis reader (``load_universe`` may have warned it)."""
    if getattr(trajectory, "_geomfeat_warned", None) is not None:
        return
    warnings.warn(message, UserWarning, stacklevel=4)
    try:
        trajectory._geomfeat_warned = message
    except AttributeError:
        pass


def _multiframe_gro(trajectory, n_atoms: int):
    """All frames of a multi-frame GRO file as ``(xyz Å, boxes Å or None)``; else ``None``."""
    if type(trajectory).__name__ != "GROReader":
        return None
    filename = str(trajectory.filename)
    with open(filename, "rb") as handle:
        n_lines = sum(1 for _ in handle)
    if n_lines < 2 * (n_atoms + 3):
        return None
    import mdtraj as md

    with md.formats.GroTrajectoryFile(filename) as gro:
        xyz, _, cells = gro.read()
    if xyz.shape[1] != n_atoms:
        raise InputError(f"{filename}: frames of {xyz.shape[1]} atoms, topology of {n_atoms}")
    boxes = None if cells is None or not np.any(cells) else np.asarray(cells) * 10.0
    return np.asarray(xyz, dtype=np.float64) * 10.0, boxes


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

    def __init__(self, data: Frames | tuple, select: Selection = "heavy", *,
                 heavy: bool = False) -> None:
        if isinstance(data, tuple):
            if len(data) not in (2, 3):
                raise InputError("array input is (positions[F, N, 3] in Å, atomic_numbers[N]) "
                                 "or (positions, atomic_numbers, residue_ids[N])")
            data = Frames(*data)
        pos = np.asarray(data.positions)
        if pos.dtype == bool or not (np.issubdtype(pos.dtype, np.integer)
                                     or np.issubdtype(pos.dtype, np.floating)):
            raise InputError(f"positions must be real numbers (Å), got an array of dtype "
                             f"{pos.dtype}")
        if np.issubdtype(pos.dtype, np.integer):  # integers are valid coordinates
            pos = pos.astype(np.float64)
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
        z_all = z_all.astype(np.int64)
        res = Resolution(z=z_all, kind=np.zeros(z_all.shape, dtype=np.int8),
                         solvent=np.zeros(z_all.shape, dtype=bool))
        self.index = self._set_selection(res, labels, labels, residue_ids, names, select, None,
                                         heavy)
        self.box = "none" if self.boxes is None else "given"

    @property
    def n_frames_total(self) -> int:
        return int(self.positions.shape[0])

    def iter_batches(self, batch_size, frames):
        for lo in range(0, len(frames), batch_size):
            chunk = frames[lo : lo + batch_size]
            part = slice(chunk.start, chunk.stop, chunk.step)
            yield Batch(chunk, self.positions[part][:, self.index],
                        None if self.boxes is None else self.boxes[part])


def open_trajectory(obj: Any, select: Selection = "heavy", *, heavy: bool = False,
                    elements=None) -> TrajectoryReader:
    """Wrap an mdtraj Trajectory, MDAnalysis Universe/AtomGroup or array tuple in a reader.

    ``heavy`` leaves out hydrogens; ``elements`` overrides elements (one per atom of ``obj``, a
    mapping by ``NAME`` / ``RESNAME:NAME`` / ``type:TYPE``, or an ``--elements`` file path; see
    :mod:`geomfeat.elements`).
    """
    if isinstance(obj, TrajectoryReader):
        return obj
    if isinstance(obj, (tuple, Frames)):
        if elements is not None:
            raise InputError("array input carries its atomic numbers; elements= is for "
                             "topologies")
        return ArrayReader(obj, select, heavy=heavy)
    module = type(obj).__module__.split(".")[0]
    if module == "mdtraj":
        return MDTrajReader(obj, select, heavy=heavy, elements=elements)
    if module == "MDAnalysis":
        return MDAnalysisReader(obj, select, heavy=heavy, elements=elements)
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
    kwargs = {}
    suffix = os.fspath(trajectory).lower()
    if suffix.endswith(AMBER_RESTART_EXTENSIONS):  # ASCII or NetCDF: MDAnalysis cannot tell
        kwargs["format"] = amber_restart_format(trajectory)
        if kwargs["format"] == "NCDF":
            raise InputError(f"{trajectory} is an Amber NetCDF restart, which MDAnalysis "
                             "cannot read: embed it as an mdtraj Trajectory (mdtraj reads it "
                             "named .ncrst: mdtraj.load('NAME.ncrst', top=...)), or convert it "
                             "to an ASCII restart")
    message = None
    with quiet_failed_readers():  # a reader that failed to open must not print when freed
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                universe = mda.Universe(os.fspath(topology), os.fspath(trajectory),
                                        **kwargs)
        except Exception as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if message is not None:
            gc.collect()  # the half-built reader, while its errors are silenced
    if message is not None:
        if "number of atoms" in message or "same number" in message:
            message = f"the files do not have the same number of atoms ({message})"
        raise InputError(f"cannot read trajectory {trajectory} with topology {topology}: "
                         f"{message}")
    warn_if_truncated(universe, trajectory)
    return universe


def prefetched(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """Run the iterator ``items`` in a background thread, ``depth`` items ahead of the consumer.

    Reading and decoding a trajectory (MDAnalysis, numpy: mostly holding the GIL) then
    overlaps with the encoder (PyTorch, which releases the GIL). Items come out in order; an
    exception raised by ``items`` is re-raised here after the items before it. If the consumer
    stops early, the thread finishes the item in progress and exits before this returns.
    ``depth=0`` iterates in line, without a thread.
    """
    if depth < 1:
        yield from items
        return
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                slots.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((False, None))
        except BaseException as exc:  # handed to the consumer, raised there
            put((False, exc))

    thread = threading.Thread(target=produce, name="geomfeat-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = slots.get()
            if ok:
                yield item
            elif item is None:
                return
            else:
                raise item
    finally:
        stop.set()
        thread.join()
