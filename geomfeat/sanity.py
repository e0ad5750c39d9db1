"""Cheap checks of input files and coordinates that catch silent wrong results.

* :func:`check_units`: the first frame's nearest-neighbour distances must look like Å;
* :func:`coarse_grained_spacing`: particles spaced like coarse-grained beads, not atoms;
* :func:`check_roles`: a topology and a trajectory given the other way round;
* :func:`warn_if_truncated`: an XTC file that does not end with a complete frame;
* :func:`quiet_failed_readers`: no ``Exception ignored in ReaderBase.__del__`` noise when
  MDAnalysis fails to open a file.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from .errors import InputError

__all__ = ["check_roles", "check_units", "coarse_grained_spacing", "quiet_failed_readers",
           "warn_if_truncated"]

#: Median nearest-neighbour distance (Å) below which coordinates cannot be in Å: bonds to
#: hydrogen are ~1.0 Å, between heavy atoms 1.2–1.6 Å; nm coordinates give 0.1–0.16.
MIN_NEIGHBOUR_ANGSTROM = 0.8
#: Median nearest-neighbour distance (Å) above which the atoms of an all-atom or heavy-atom
#: selection are not a molecule in Å (liquid water's O–O is 2.8 Å; Å read as nm give 10–15).
MAX_NEIGHBOUR_ANGSTROM = 5.0
#: Longest distance (Å) from an atom to its nearest bonded partner: bonds to hydrogen are
#: ~1.0 Å, between heavy atoms 1.2–2.3 Å (C–I 2.14, S–S 2.05, Br–Br 2.28), I–I 2.67 Å.
BOND_ANGSTROM = 2.75
#: Median bead spacing (Å) up to which isolated particles are read as coarse-grained beads
#: (3–5 Å in CG models); beyond it, all-atom coordinates 10× too large are the likelier reading,
#: left to :func:`check_units`.
MAX_BEAD_SPACING = 8.0
#: Candidates whose nearest neighbour is measured (an evenly spaced sample beyond that).
MAX_JUDGED = 20_000


def median_neighbour_distance(positions: np.ndarray, box: np.ndarray | None = None) -> float:
    """Median over atoms of the distance to the nearest other atom, Å.

    With a ``box`` (rows are box vectors) at least twice :data:`MAX_NEIGHBOUR_ANGSTROM` wide,
    distances are minimum images, and atoms without a neighbour within that distance count
    as infinitely far; otherwise plain distances (a k-d tree).
    """
    if box is not None:
        import torch

        from .neighbors import perpendicular_widths, radius_graph

        box_t = torch.tensor(np.array(box, dtype=np.float64))  # a copy: inputs may be read-only
        if bool(perpendicular_widths(box_t).min() >= 2 * MAX_NEIGHBOUR_ANGSTROM):
            pos = torch.tensor(np.array(positions, dtype=np.float64))[None]
            edges = radius_graph(pos, MAX_NEIGHBOUR_ANGSTROM, box=box_t[None])
            source, target = edges.index
            other = source != target
            nearest = torch.full((pos.shape[1],), float("inf"), dtype=pos.dtype)
            nearest = nearest.scatter_reduce(0, target[other], edges.length[other], "amin")
            return float(nearest.median())
    from scipy.spatial import cKDTree

    distances, _ = cKDTree(positions).query(positions, k=2)
    return float(np.median(distances[:, 1]))


def check_units(positions: np.ndarray, select: Any, source: str, frame: int = 0,
                box: np.ndarray | None = None) -> None:
    """Raise :class:`InputError` if ``positions`` (one frame, Å) look like another unit.

    The median nearest-neighbour distance of the selected atoms must be at least
    :data:`MIN_NEIGHBOUR_ANGSTROM` (any selection) and, for ``"all"`` and ``"heavy"``
    selections, at most :data:`MAX_NEIGHBOUR_ANGSTROM`. With a periodic ``box`` (Å) the
    distances are minimum images (a molecule split across the box is whole). Costs one
    neighbour search of one frame.
    """
    positions = np.asarray(positions, dtype=np.float64)
    if positions.shape[0] < 2 or not np.isfinite(positions).all():
        return
    median = median_neighbour_distance(positions, box)
    opt_out = "check_units=False (--no-unit-check) if they really are in Å"
    if median < MIN_NEIGHBOUR_ANGSTROM:
        raise InputError(
            f"frame {frame} of {source}: the median distance between an atom and its nearest "
            f"neighbour is {median:.3f} Å, far below any bond length: the coordinates look like "
            f"nm where Å are expected; multiply them by 10 (mdtraj Trajectories are in nm and "
            f"converted, MDAnalysis and arrays must be in Å), or pass {opt_out}")
    if isinstance(select, str) and select in ("all", "heavy") and median > MAX_NEIGHBOUR_ANGSTROM:
        raise InputError(
            f"frame {frame} of {source}: the median distance between an atom and its nearest "
            f"neighbour is {_distance(median)}, far above bond lengths: the coordinates look "
            f"10× too large (Å stored where nm are expected?); divide them by 10, or pass "
            f"{opt_out}")


def _distance(value: float) -> str:
    if np.isfinite(value):
        return f"{value:.1f} Å"
    return f"over {MAX_NEIGHBOUR_ANGSTROM} Å (most atoms have no neighbour that close)"


def coarse_grained_spacing(positions: np.ndarray, candidates: np.ndarray,
                           particles: np.ndarray | None = None) -> tuple[float, float] | None:
    """Whether the ``candidates`` are spaced like coarse-grained beads rather than atoms.

    Every atom of an all-atom structure has a bonded partner within :data:`BOND_ANGSTROM`,
    with or without hydrogens (heavy atoms are 1.2–2.1 Å apart); only lone atoms (ions, a
    lone water oxygen) have none. Coarse-grained beads are 3–5 Å apart.

    Parameters
    ----------
    positions : ndarray, shape (N, 3)
        One frame, Å.
    candidates : ndarray of bool, shape (N,)
        Particles to judge (e.g. not water, ions or virtual sites).
    particles : ndarray of bool, shape (N,), optional
        Particles that count as neighbours (default: all).

    Returns
    -------
    (fraction, median) or None
        When more than half of at least two candidates have no neighbour within
        :data:`BOND_ANGSTROM` and their median nearest-neighbour distance is at most
        :data:`MAX_BEAD_SPACING`: the fraction without a partner and that median (Å);
        otherwise ``None``.
    """
    positions = np.asarray(positions, dtype=np.float64)
    candidates = np.asarray(candidates, dtype=bool)
    others = candidates if particles is None else np.asarray(particles, dtype=bool) | candidates
    if candidates.sum() < 2 or not np.isfinite(positions[others]).all():
        return None
    from scipy.spatial import cKDTree

    tree = cKDTree(positions[others], balanced_tree=False, compact_nodes=False)  # 2× faster
    judged = positions[candidates]
    judged = judged[::max(1, judged.shape[0] // MAX_JUDGED)]  # an even sample of big systems
    distances, _ = tree.query(judged, k=2)
    nearest = distances[:, 1]
    fraction = float(np.mean(nearest > BOND_ANGSTROM))
    median = float(np.median(nearest))
    if fraction > 0.5 and median <= MAX_BEAD_SPACING:
        return fraction, median
    return None


def check_roles(trajectory: str | os.PathLike, topology: str | os.PathLike) -> None:
    """Raise :class:`InputError` if ``topology`` is a coordinate-only format (no atom names).

    MDAnalysis would read it as a "minimal" topology and fail later with ``NoDataError``.
    When the trajectory is a topology format, the message asks whether the two were swapped.
    """
    import MDAnalysis
    from MDAnalysis.lib.util import guess_format

    def kind(path: str | os.PathLike) -> str | None:
        try:
            return str(guess_format(os.fspath(path))).upper()
        except (TypeError, ValueError):
            return None  # unknown extension: MDAnalysis will say so

    top_format, traj_format = kind(topology), kind(trajectory)
    parsers = {k for k in MDAnalysis._PARSERS if k != "MINIMAL"}
    if top_format is None or top_format in parsers:
        return
    if traj_format in parsers:
        raise InputError(f"{topology} is a trajectory file ({top_format}), not a topology, and "
                         f"{trajectory} is a topology file ({traj_format}): did you swap TRAJ "
                         "and TOP? (the trajectory comes first)")
    raise InputError(f"{topology} is a trajectory file ({top_format}) without atom names or "
                     "elements, not a topology: give a topology file (PDB, GRO, PSF, PRMTOP, "
                     "TPR, ...)")


def warn_if_truncated(universe: Any, trajectory: str | os.PathLike) -> None:
    """Warn if an XTC file does not end with a complete frame (e.g. cut off while copied).

    Bytes after the last complete frame, or a last frame cut off inside its body: only the
    complete frames are used (:func:`geomfeat.formats.complete_frames`, one small read).
    """
    from .formats import complete_frames

    truncation = complete_frames(universe.trajectory, trajectory)
    if truncation is not None:
        message = truncation.message(trajectory)
        warnings.warn(message, UserWarning, stacklevel=3)
        universe.trajectory._geomfeat_warned = message  # the reader of geomfeat: not again


@contextmanager
def quiet_failed_readers() -> Iterator[None]:
    """Silence the ``ReaderBase.__del__`` errors of MDAnalysis readers that failed to open.

    A reader whose ``__init__`` raised (empty file, wrong format) has no file handle, and its
    ``__del__`` then raises ``AttributeError``, printed by Python as "Exception ignored in ..."
    whenever the half-built object is collected. Inside this block such errors are dropped
    (all others, and interrupts, go to the previous hook). After a failed open, let go of the
    exception (and so of the reader) and call :func:`gc.collect` inside the block. Only then:
    a full collection takes 0.2 s in a process with PyTorch loaded, and when every open paid
    for one it was half the time of ``geomfeat embed`` on a folder of short trajectories.
    """
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        where = getattr(unraisable.object, "__qualname__", "")
        module = getattr(unraisable.object, "__module__", "") or ""
        if (isinstance(unraisable.exc_value, Exception) and where.endswith("__del__")
                and module.startswith("MDAnalysis")):
            return  # not an interrupt that happened to arrive during the __del__
        previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous
