"""The feature families a selection chooses from, their sizes and a memory budget.

A *family* is one feature-set spec (:mod:`geomfeat.evaluate.features`): an encoder readout
(model, pool, channels, layers), heavy-atom or Cα distances, contacts, backbone or side-chain
torsions, or user arrays (``npy:``). :func:`default_families` lists them for a topology, with
each family's dimension known **before** it is computed, so that a large system never builds
an array that does not fit:

- a pair family (``distances``, ``ca-distances``, ``contacts``) with more than ``max_dims``
  pairs becomes its subsampled variant ``KIND:max_dims`` (evenly spaced pairs);
- any other family with more than ``max_dims`` dimensions is left out, with the reason;
- :func:`memory_estimate` gives the bytes a family needs (features, float32, all frames; the
  standardised float64 training copy and the PCA of :mod:`~geomfeat.evaluate.reduce`).

Sizes: heavy-atom distances ``n(n-1)/2`` for ``n`` heavy atoms; encoder readouts ``H`` per
layer for the graph vector, ``R·H`` per layer for residue tokens (``2H`` with ``invariant``
channels); torsions ``2`` (sin, cos) per angle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import GeomfeatError
from .features import parse_spec

__all__ = ["DEFAULT_MAX_DIMS", "READOUTS", "Family", "default_families", "family_dims",
           "memory_estimate"]

#: Largest family (features per frame) built by default.
DEFAULT_MAX_DIMS = 20000

#: Encoder readouts tried per model: (pool, channels, layers).
READOUTS = (("graph", "scalar", "last"), ("graph", "invariant", "all"),
            ("residue", "scalar", "last"), ("residue", "scalar", "all"))


@dataclass
class Family:
    """One candidate family: its spec, kind, dimension and estimated memory (bytes)."""

    spec: str
    kind: str
    dims: int
    memory: int = 0
    note: str = ""

    def as_dict(self) -> dict:
        return {"spec": self.spec, "kind": self.kind, "dims": self.dims,
                "memory_mb": round(self.memory / 2 ** 20, 1), "note": self.note}


def _heavy(top) -> int:
    return sum(1 for a in top.atoms if a.element is None or a.element.symbol != "H")


def _torsion_counts(top) -> dict[str, int]:
    """φ, ψ, χ1–χ4 counts from the topology alone."""
    from mdtraj.geometry import dihedral

    return {k: len(getattr(dihedral, f"indices_{k}")(top)) for k in
            ("phi", "psi", "chi1", "chi2", "chi3", "chi4")}


def family_dims(spec: str, top) -> int:
    """Features per frame of ``spec`` on topology ``top`` (mdtraj), without computing them.

    ``npy:`` families are not known before they are read: 0.
    """
    from ..registry import get_model_card

    total = 0
    for part in parse_spec(spec):
        kind = part["kind"]
        if kind == "embedding":
            card = get_model_card(part["model"])
            h = card.hidden_channels * (2 if part["features"] == "invariant" else 1)
            n_layers = int(card.hyperparameters.get("num_layers", 1))
            layers = part["layers"]
            n = 1 if layers == "last" else n_layers if layers == "all" else len(layers)
            tokens = 1 if part["pool"] == "graph" else top.n_residues
            total += tokens * n * h
        elif kind in ("distances", "ca-distances"):
            n = _heavy(top) if kind == "distances" else len(top.select("name CA"))
            pairs = n * (n - 1) // 2
            total += min(pairs, part.get("max_pairs") or pairs)
        elif kind == "contacts":
            r = top.n_residues
            pairs = max(0, (r - 3) * (r - 2) // 2)  # residue pairs >= 3 apart
            total += min(pairs, part.get("max_pairs") or pairs)
        elif kind in ("backbone-torsions", "sidechain-torsions", "torsions"):
            c = _torsion_counts(top)
            keys = {"backbone-torsions": ("phi", "psi"),
                    "sidechain-torsions": ("chi1", "chi2", "chi3", "chi4")}.get(
                kind, ("phi", "psi", "chi1", "chi2", "chi3", "chi4"))
            total += 2 * sum(c[k] for k in keys)
    return total


def memory_estimate(dims: int, frames: int, train_fraction: float = 0.6) -> int:
    """Bytes one family needs in a selection: its features and their reduction.

    float32 features of every frame, a float64 standardised copy of the training frames, and
    the PCA: a ``D × D`` covariance up to :data:`~geomfeat.evaluate.reduce.EXACT_MAX`
    features, else the randomised SVD's ``D × M`` working arrays (``M`` the largest kept
    dimension, at most the training frames / 10).
    """
    from .reduce import EXACT_MAX, FRAMES_PER_DIM

    n_train = int(frames * train_fraction)
    pca = 8 * dims * dims * 2 if dims <= EXACT_MAX else 8 * dims * max(
        1, min(dims, n_train // FRAMES_PER_DIM)) * 4
    return 4 * dims * frames + 8 * dims * n_train + pca


def default_families(top, frames: int, *, models: Sequence[str] = (),
                     extra: Sequence[str] = (), max_dims: int = DEFAULT_MAX_DIMS,
                     specs: Sequence[str] | None = None) -> tuple[list[Family], list[dict]]:
    """The families a selection tries on topology ``top`` (mdtraj) for ``frames`` frames.

    Parameters
    ----------
    top : mdtraj.Topology
        The system.
    frames : int
        Analysed frames (all trajectories), for the memory estimate.
    models : sequence of str
        Encoders whose readouts (:data:`READOUTS`) are families.
    extra : sequence of str
        Further specs (``npy:`` arrays, concatenations) added as they are.
    max_dims : int
        Budget: largest family; pair families above it are subsampled, others left out.
    specs : sequence of str, optional
        The candidates instead of the catalogue (``models`` ignored; ``extra`` added).

    Returns
    -------
    families : list of Family
        In the order tried.
    left_out : list of dict
        ``{"spec", "dims", "reason"}`` of families over the budget or empty on ``top``.
    """
    if max_dims < 1:
        raise GeomfeatError(f"max_dims must be >= 1, got {max_dims}")
    if specs is None:
        specs = [f"{m}:{p}:{c}:{layer}" for m in models for p, c, layer in READOUTS]
        specs += ["distances", "ca-distances", "contacts", "backbone-torsions",
                  "sidechain-torsions"]
    families, left_out = [], []
    for spec in [*specs, *extra]:
        kind = parse_spec(spec)[0]["kind"] if "+" not in spec else "concatenation"
        dims = family_dims(spec, top)
        if kind != "npy" and dims == 0:
            left_out.append({"spec": spec, "dims": 0, "reason": "none on this topology"})
            continue
        note = ""
        if dims > max_dims and kind in ("distances", "ca-distances", "contacts") \
                and ":" not in spec:
            note = f"all {dims} pairs exceed the budget of {max_dims}: evenly spaced subset"
            spec, dims = f"{spec}:{max_dims}", max_dims
        elif dims > max_dims:
            left_out.append({"spec": spec, "dims": dims,
                             "reason": f"{dims} dimensions exceed the budget of {max_dims}"})
            continue
        families.append(Family(spec, kind, dims, memory_estimate(dims, frames), note))
    return families, left_out
