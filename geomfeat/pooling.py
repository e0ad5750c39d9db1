"""Pooling per-atom encoder outputs into frame, residue or atom embeddings.

Shapes, for a batch of ``B`` frames of ``N`` atoms in ``R`` residues and width ``H``:

============  =================  ==================  =====================
``pool``      ``"scalar"``       ``"invariant"``     ``"equivariant"``
============  =================  ==================  =====================
``"graph"``   ``(B, H)``         ``(B, 2H)``         ``(B, 4, H)``
``"residue"`` ``(B, R, H)``      ``(B, R, 2H)``      ``(B, R, 4, H)``
``"atom"``    ``(B, N, H)``      ``(B, N, 2H)``      ``(B, N, 4, H)``
============  =================  ==================  =====================

``"invariant"`` appends the Euclidean norms of the *pooled* vector channels to the scalar
channels; ``"equivariant"`` stacks the scalar channel (row 0) on the three Cartesian components
of the vector channels (rows 1–3).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["FEATURES", "POOLS", "REDUCES", "combine_features", "pool_atoms"]

#: ``"residue-local"`` is pooled by :class:`~geomfeat.featurizer.GeomFeaturizer` from the
#: residues' local graphs (:mod:`geomfeat.localgraph`), not by :func:`pool_atoms`.
POOLS = ("graph", "residue", "atom", "residue-local")
REDUCES = ("sum", "mean")
FEATURES = ("scalar", "invariant", "equivariant")


def pool_atoms(t: Tensor, pool: str, reduce: str, residues: Tensor | None = None,
               n_residues: int | None = None) -> Tensor:
    """Reduce a per-atom tensor ``(B, N, ...)`` over atoms.

    Parameters
    ----------
    t : Tensor, shape (B, N, ...)
        Per-atom features.
    pool : {"graph", "residue", "atom"}
        ``"graph"`` → ``(B, ...)``, ``"residue"`` → ``(B, R, ...)``, ``"atom"`` → unchanged.
    reduce : {"sum", "mean"}
        How atoms are combined.
    residues : Tensor, shape (N,), int64
        Token index of every atom (needed for ``pool="residue"``).
    n_residues : int
        Number of tokens ``R``.
    """
    if pool == "atom":
        return t
    if pool == "graph":
        return t.sum(1) if reduce == "sum" else t.mean(1)
    if residues is None or n_residues is None:
        raise ValueError("pool='residue' needs residue indices")
    out = t.new_zeros((t.shape[0], n_residues, *t.shape[2:]))
    out.index_add_(1, residues, t)
    if reduce == "mean":
        counts = torch.bincount(residues, minlength=n_residues).to(t.dtype)
        out = out / counts.view(1, -1, *([1] * (t.ndim - 2)))
    return out


def combine_features(x: Tensor, vec: Tensor, features: str) -> Tensor:
    """Combine pooled scalar ``x (..., H)`` and vector ``vec (..., 3, H)`` channels."""
    if features == "scalar":
        return x
    if features == "invariant":
        return torch.cat([x, torch.linalg.vector_norm(vec, dim=-2)], dim=-1)
    if features == "equivariant":
        return torch.cat([x.unsqueeze(-2), vec], dim=-2)
    raise ValueError(f"unknown features {features!r}; choose from {FEATURES}")
