"""What MDAnalysis's readers leave out of particular file formats, read so that both paths agree.

geomfeat reads files with MDAnalysis (the command line, ``Universe`` input) or takes an
``mdtraj.Trajectory``. Where the two toolkits read the same file differently, this module
supplies what MDAnalysis misses, following mdtraj's reading (or refuses the file in one line):

* :func:`header_cell`: a multi-model PDB with one ``CRYST1`` before ``MODEL 1`` (what MD tools
  write). MDAnalysis reads each model's cell from inside the model only, so no model has one;
  mdtraj applies the record to every model; CRYST1 records in some models only are refused;
* :func:`amber_restart_cell`: the box line of an Amber ASCII restart (``.inpcrd``, ``.rst7``),
  which MDAnalysis's ``INPReader`` does not read;
* :func:`amber_restart_format`: the format of an Amber restart by content (``.rst7`` files are
  ASCII or NetCDF; MDAnalysis does not know the extension);
* :func:`mdtraj_altlocs`: which atoms of alternate locations mdtraj keeps (MDAnalysis keeps all);
* :func:`check_mol2_molecules`: a multi-molecule mol2 file is read by MDAnalysis as frames of
  its first molecule's atoms, so its molecules must have the same atoms;
* :func:`complete_frames`: frames of an XTC or DCD file that are complete on disk (MDAnalysis
  counts an XTC frame cut off inside its body as a frame, and drops a DCD's without a word).

Cells are returned as ``(3, 3)`` box vectors (rows) in Å.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InputError

__all__ = [
    "AltlocChoice",
    "Truncation",
    "amber_restart_cell",
    "amber_restart_format",
    "check_mol2_molecules",
    "complete_frames",
    "dummy_cell_density",
    "header_cell",
    "mdtraj_altlocs",
]

#: Extensions of Amber restart files, ASCII or NetCDF (MDAnalysis knows only some, as ASCII).
AMBER_RESTART_EXTENSIONS = (".rst7", ".ncrst", ".rst", ".restrt", ".inpcrd")


def _vectors(dimensions: np.ndarray) -> np.ndarray | None:
    """Box vectors (rows, Å) of ``[a, b, c, alpha, beta, gamma]``; ``None`` if degenerate."""
    from MDAnalysis.lib.mdamath import triclinic_vectors

    vectors = np.asarray(triclinic_vectors(np.asarray(dimensions, dtype=np.float32)),
                         dtype=np.float64)
    return vectors if np.any(vectors) else None


def header_cell(path: str | os.PathLike) -> np.ndarray | None:
    """The cell of every model of a multi-model PDB with one ``CRYST1`` record, if any.

    MD tools write it before ``MODEL 1``, where MDAnalysis reads it for no model; mdtraj
    applies it to every model, and so does geomfeat. With a ``CRYST1`` in every model,
    MDAnalysis reads one per model (``None`` here). The placeholder cell of 1 Å sides is no
    cell (as MDAnalysis and mdtraj read it).

    Raises
    ------
    InputError
        If some models have a ``CRYST1`` and others not (which cell they have is unknown;
        mdtraj would give every model the last one).
    """
    from MDAnalysis.lib.util import anyopen

    cryst, models = [], 0
    with anyopen(os.fspath(path), "r") as handle:
        for line in handle:
            if line.startswith("MODEL"):
                models += 1
            elif line.startswith("CRYST1"):
                cryst.append(line)
    if models < 2 or len(cryst) in (0, models):
        return None
    if len(cryst) != 1:
        raise InputError(f"{path} has CRYST1 records for {len(cryst)} of its {models} models, "
                         "so the unit cell of the others is unknown: keep one CRYST1 before "
                         "MODEL 1 (one cell for all) or one in every model")
    line = cryst[0]
    try:
        dims = np.array([line[6:15], line[15:24], line[24:33], line[33:40], line[40:47],
                         line[47:54]], dtype=np.float64)
    except ValueError:
        raise InputError(f"{path}: its CRYST1 record cannot be read: "
                         f"{line.strip()!r}") from None
    if np.allclose(dims, [1.0, 1.0, 1.0, 90.0, 90.0, 90.0]):
        return None
    return _vectors(dims)


#: Atoms per nm³ above which mdtraj discards a PDB's CRYST1 cell as a placeholder (liquid
#: water has ~100).
MAX_CELL_DENSITY = 1000.0


def dummy_cell_density(cell: np.ndarray, n_atoms: int) -> float | None:
    """Atoms per nm³ of a PDB cell (rows, Å) too dense to be real (mdtraj's test); else ``None``.

    mdtraj discards the CRYST1 cell of a PDB file holding more than
    :data:`MAX_CELL_DENSITY` atoms per nm³ (placeholders of files without a cell).
    """
    volume = abs(float(np.linalg.det(np.asarray(cell, dtype=np.float64)))) / 1000.0
    density = n_atoms / volume if volume > 0 else float("inf")
    return density if density > MAX_CELL_DENSITY else None


def amber_restart_format(path: str | os.PathLike) -> str:
    """``"NCDF"`` for a NetCDF Amber restart (classic or HDF5-based), else ``"INPCRD"``."""
    with open(path, "rb") as handle:
        magic = handle.read(4)
    return "NCDF" if magic[:3] == b"CDF" or magic == b"\x89HDF" else "INPCRD"


def amber_restart_cell(path: str | os.PathLike) -> np.ndarray | None:
    """The box of an Amber ASCII restart (``.inpcrd``/``.rst7``), or ``None`` without one.

    After the title and the atom count come ``ceil(N / 2)`` lines of coordinates, optionally as
    many of velocities, then optionally the box line (``a b c alpha beta gamma``, Å and
    degrees). The number of lines tells which, as mdtraj decides (also its rule for one or two
    atoms, where a fourth line is a box only if it has six fields / a value of at least 60).

    Raises
    ------
    InputError
        If the number of lines fits no layout, or the box line cannot be read.
    """
    with open(path) as handle:
        lines = handle.read().rstrip("\n").split("\n")
    try:
        n_atoms = int(lines[1].split()[0])
    except (IndexError, ValueError):
        raise InputError(f"{path} is not an Amber ASCII restart (no atom count on its second "
                         "line)") from None
    per_block = math.ceil(n_atoms / 2)
    n = len(lines)
    if n in (per_block + 2, 2 * per_block + 2):
        has_box = False
    elif n_atoms in (1, 2) and n == 4:
        fields = [lines[3][i : i + 12] for i in range(0, 72, 12) if lines[3][i : i + 12].strip()]
        try:
            has_box = len(fields) == 6 and (n_atoms == 1 or
                                            any(float(f) >= 60.0 for f in fields))
        except ValueError:
            has_box = False
    elif n in (per_block + 3, 2 * per_block + 3):
        has_box = True
    else:
        raise InputError(f"{path}: {n} lines do not fit an Amber restart of {n_atoms} atoms "
                         "(coordinates, optional velocities, optional box line)")
    if not has_box:
        return None
    line = lines[-1]
    try:
        values = [float(line[i : i + 12]) for i in range(0, 72, 12) if line[i : i + 12].strip()]
    except ValueError:
        raise InputError(f"{path}: the box line cannot be read: {line.strip()!r}") from None
    if len(values) == 3:  # old files: lengths only, a rectangular box
        values += [90.0, 90.0, 90.0]
    if len(values) != 6:
        raise InputError(f"{path}: the box line has {len(values)} numbers, not 3 or 6: "
                         f"{line.strip()!r}")
    return _vectors(np.array(values))


@dataclass
class AltlocChoice:
    """Which atoms of alternate locations are kept (mdtraj's rule).

    Attributes
    ----------
    drop : ndarray of bool, shape (N,)
        Atoms left out: a later location of an atom name already seen at the same residue
        position.
    position : ndarray of int, shape (N,)
        Residue position of each atom (consecutive atoms with equal chain, residue number and
        insertion code), numbered from 0: mdtraj's residues.
    mixed : list of str
        Positions that hold different residues in different locations, e.g.
        ``"ILE2 (A, B) / LEU2 (C): LEU's CG, CD2 kept"``.
    """

    drop: np.ndarray
    position: np.ndarray
    mixed: list[str]


def mdtraj_altlocs(names: np.ndarray, altlocs: np.ndarray, resnames: np.ndarray | None,
                   resids: np.ndarray, icodes: np.ndarray | None,
                   chains: np.ndarray | None) -> AltlocChoice:
    """The atoms mdtraj's PDB reader keeps of a file with alternate locations.

    mdtraj (as OpenMM) keeps, at each residue position, the first atom listed of each name,
    whatever its location or residue name. A position with different residues in different
    locations (microheterogeneity: ILE in locations A and B, LEU in C) is one residue, named
    after its first location, with the atoms of the others whose names it lacks (LEU's CG and
    CD2): such positions are listed in ``mixed``.
    """
    n = len(names)
    if resnames is None:
        resnames = np.full(n, "")
    keys = list(zip(chains if chains is not None else [""] * n, resids,
                    icodes if icodes is not None else [""] * n, strict=True))
    drop = np.zeros(n, dtype=bool)
    position = np.zeros(n, dtype=np.int64)
    seen: dict[str, set[str]] = {}
    variants: dict[str, list[str]] = {}  # residue name → locations, at this position
    added: dict[str, list[str]] = {}  # residue name → atom names it adds to the first
    mixed: list[str] = []
    current = -1

    def close(k: int) -> None:
        if len(variants) > 1:
            others = list(variants)[1:]
            parts = " / ".join(f"{r}{resids[k]}" + (f" ({', '.join(v)})" if v else "")
                               for r, v in variants.items())
            extra = "; ".join(f"{r}'s {', '.join(added[r])} kept" for r in others
                              if added.get(r))
            mixed.append(f"{parts}{': ' + extra if extra else ''}")

    for i in range(n):
        if i == 0 or keys[i] != keys[i - 1]:
            if i:
                close(i - 1)
            current += 1
            seen, variants, added = {}, {}, {}
        position[i] = current
        name, alt, resname = str(names[i]), str(altlocs[i]), str(resnames[i])
        locations = variants.setdefault(resname, [])
        if alt and alt not in locations:
            locations.append(alt)
        if name in seen and alt not in seen[name]:
            seen[name].add(alt)
            drop[i] = True
            continue
        if name not in seen and variants and resname != next(iter(variants)):
            added.setdefault(resname, []).append(name)
        seen.setdefault(name, set()).add(alt)
    if n:
        close(n - 1)
    return AltlocChoice(drop, position, mixed)


def check_mol2_molecules(path: str | os.PathLike) -> int:
    """Number of molecules of a mol2 file; an error if they do not have the same atoms.

    MDAnalysis reads a multi-molecule mol2 file as frames with the first molecule's atoms, so
    a second, different molecule of as many atoms would get the first one's elements; mdtraj's
    ``load_mol2`` reads only the last molecule.

    Raises
    ------
    InputError
        If two molecules differ in their atoms' names or SYBYL types (or their number).
    """
    molecules: list[tuple[str, list[tuple[str, str]]]] = []
    section = ""
    with open(path, errors="replace") as handle:
        for line in handle:
            if line.startswith("@<TRIPOS>"):
                section = line.strip()
                if section == "@<TRIPOS>MOLECULE":
                    molecules.append(("", []))
                continue
            if not molecules:
                continue
            if section == "@<TRIPOS>MOLECULE" and not molecules[-1][0] and line.strip():
                molecules[-1] = (line.strip(), molecules[-1][1])
            elif section == "@<TRIPOS>ATOM" and line.strip():
                fields = line.split()
                if len(fields) >= 6:
                    molecules[-1][1].append((fields[1], fields[5]))
    for k, (name, atoms) in enumerate(molecules[1:], start=2):
        if atoms != molecules[0][1]:
            first = ", ".join(f"{a}:{t}" for a, t in molecules[0][1][:4])
            other = ", ".join(f"{a}:{t}" for a, t in atoms[:4])
            raise InputError(
                f"{path} holds {len(molecules)} molecules with different atoms (molecule {k} "
                f"{name!r}: {len(atoms)} atoms {other}, ...; molecule 1: "
                f"{len(molecules[0][1])} atoms {first}, ...), which would be read as frames of "
                "the first: give one molecule per file")
    return len(molecules)


@dataclass
class Truncation:
    """How an XTC or DCD file ends (see :func:`complete_frames`).

    Attributes
    ----------
    complete : int
        Frames complete on disk.
    trailing : int
        Bytes after the last complete frame (0: the file ends with a complete frame).
    cut_frame : bool
        Whether those bytes are a frame that MDAnalysis counts (cut off inside its body).
    """

    complete: int
    trailing: int
    cut_frame: bool

    def message(self, path: str | os.PathLike) -> str:
        """One line for a warning and the sidecar."""
        n = self.complete
        frames = f"its {n} complete frame{'s' * (n != 1)}"
        if self.cut_frame:
            return (f"{path} ends inside frame {n} ({self.trailing} bytes of it; truncated?): "
                    f"using {frames}")
        return (f"{path} ends with {self.trailing} bytes that are not a complete frame "
                f"(truncated?): using {frames}")


def complete_frames(reader: Any, path: str | os.PathLike) -> Truncation | None:
    """How the XTC or DCD file ``path`` read by MDAnalysis's ``reader`` ends; ``None`` if it
    ends with a complete frame (or is of another format).

    XTC: the end of the last frame MDAnalysis found is read from its header (92 bytes), one
    small read. DCD: the frames have a fixed size (MDAnalysis counts the complete ones).
    """
    kind = getattr(reader, "format", None)
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "DCD":
        return _dcd_end(reader, path)
    if kind != "XTC" or reader.n_frames < 1:
        return None
    try:
        last = int(reader._xdr.offsets[-1])
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            handle.seek(last)
            header = handle.read(92)
    except (AttributeError, OSError, IndexError):
        return None
    n = int(reader.n_frames)
    natoms = struct.unpack(">i", header[4:8])[0] if len(header) >= 8 else 0
    if len(header) < 8:
        end = size + 1  # not even the atom count: the frame is cut
    elif natoms <= 9:  # stored uncompressed
        end = last + 56 + 12 * natoms
    elif len(header) == 92:
        nbytes = struct.unpack(">i", header[88:92])[0]
        end = last + 92 + (nbytes + 3) // 4 * 4
    else:
        end = size + 1  # the header itself is cut
    if end > size:
        return Truncation(n - 1, size - last, True)
    if size > end:
        return Truncation(n, size - end, False)
    return None


def _dcd_end(reader: Any, path: str | os.PathLike) -> Truncation | None:
    try:
        dcd = reader._file
        start = int(dcd._header_size) + int(dcd._firstframesize)
        size, frame = os.path.getsize(path), int(dcd._framesize)
    except (AttributeError, OSError, TypeError, ValueError):
        return None
    if size < start or frame <= 0:
        return None
    trailing = (size - start) % frame
    return Truncation(int(reader.n_frames), trailing, False) if trailing else None
