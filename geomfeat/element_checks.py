"""What a selection's resolved elements mean: refusals naming the atoms, and summaries.

:func:`check_atomic_numbers` refuses selected particles the encoders cannot take (unresolved,
out of range, coarse-grained); :func:`describe_atoms` groups atoms for such messages;
:func:`element_counts` and :func:`overruled_counts` are what the sidecar records.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from .elements import COARSE, COARSE_GEOMETRY, MAX_Z, VIRTUAL, Resolution, symbol
from .errors import InputError

__all__ = ["check_atomic_numbers", "describe_atoms", "element_counts", "overruled_counts"]


def describe_atoms(index: np.ndarray, labels: Sequence[str], keys: Sequence[str],
                   limit: int = 6) -> str:
    """``"SOL:MW ×4612 (e.g. SOL2:MW (atom 9)), ..."``: atoms grouped by residue and atom name."""
    groups: dict[str, list[int]] = {}
    for i in index:
        groups.setdefault(keys[i], []).append(int(i))
    parts = [f"{key} ×{len(ix)} (e.g. {labels[ix[0]]})" if len(ix) > 1 else labels[ix[0]]
             for key, ix in list(groups.items())[:limit]]
    more = f" and {len(groups) - limit} more kinds" if len(groups) > limit else ""
    return ", ".join(parts) + more


def check_atomic_numbers(z: np.ndarray, labels: Sequence[str], source: str,
                         kind: np.ndarray | None = None,
                         keys: Sequence[str] | None = None, coarse_note: str = "") -> None:
    """Raise :class:`InputError` naming the selected atoms the encoders cannot take.

    Parameters
    ----------
    z : ndarray, shape (N,)
        Atomic numbers (0 = unknown element).
    labels : sequence of str
        A readable label per atom (residue, name, index), used in the message.
    source : str
        What the atoms came from (file or object), used in the message.
    kind : ndarray, shape (N,), optional
        Kinds from :func:`resolve_elements` (coarse-grained beads get their own message).
    keys : sequence of str, optional
        ``RESNAME:NAME`` per atom, to group atoms in the message.
    coarse_note : str
        Why particles were found coarse-grained by their spacing (:attr:`Resolution.coarse_note`).
    """
    keys = labels if keys is None else keys
    if kind is not None:
        spaced = np.flatnonzero(kind == COARSE_GEOMETRY)
        if spaced.size:
            raise InputError(
                f"{spaced.size} selected particle(s) of {source} look like coarse-grained beads, "
                f"not atoms: {coarse_note or 'they are spaced like beads'} "
                f"({describe_atoms(spaced, labels, keys, limit=3)}); the encoders were trained "
                "on all-atom structures, so geomfeat does not embed coarse-grained models (if "
                "these really are atoms, give their elements, elements= / --elements, which "
                "skips this check)")
        coarse = np.flatnonzero(kind == COARSE)
        if coarse.size:
            raise InputError(
                f"{coarse.size} selected particle(s) of {source} are coarse-grained beads "
                f"(MARTINI-style names), not atoms: {describe_atoms(coarse, labels, keys)}; the "
                "encoders were trained on all-atom structures, so geomfeat does not embed "
                "coarse-grained models (give elements= / --elements only if these are atoms)")
    bad = np.flatnonzero((z <= 0) | (z >= MAX_Z))
    if bad.size == 0:
        return
    out_of_range = [i for i in bad if z[i] >= MAX_Z]
    what = (f"Z >= {MAX_Z}: " + ", ".join(f"{labels[i]} (Z={z[i]})" for i in out_of_range[:5])
            if out_of_range else "no element could be resolved: "
            + describe_atoms(bad, labels, keys))
    raise InputError(
        f"{bad.size} selected atom(s) of {source} have no element the encoders accept "
        f"(1 <= Z < {MAX_Z}); {what}; select them out or give their elements "
        "(elements={'NAME': 'Zn'} / --elements FILE)")


def overruled_counts(index: np.ndarray, res: Resolution, keys: Sequence[str],
                     ) -> dict[str, int]:
    """``{"ALA:CA Ca → C": 19, "LIG:DU1 H → virtual": 2}``: stored elements that the atoms'
    names overruled, among the atoms ``index``, grouped by ``keys`` (``RESNAME:NAME``)."""
    if res.overruled is None:
        return {}
    counts: Counter[str] = Counter()
    for i in index[res.overruled[index] > 0]:
        new = "virtual" if res.kind[i] == VIRTUAL else symbol(int(res.z[i]))
        counts[f"{keys[i]} {symbol(int(res.overruled[i]))} → {new}"] += 1
    return dict(counts)


def element_counts(z: np.ndarray) -> dict[str, int]:
    """``{"C": 6, "N": 2, ...}`` in order of atomic number."""
    counts = Counter(int(v) for v in z)
    return {symbol(k): counts[k] for k in sorted(counts)}
