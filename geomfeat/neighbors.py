"""Neighbour lists in plain PyTorch (no torch-cluster).

The encoders were pre-trained with the neighbour list "every pair within the cutoff, self-loops
included" and geomfeat reproduces exactly that: **no cap on the number of neighbours**. Some
implementations (torch-cluster's ``radius_graph`` with its default ``max_num_neighbors=32``)
silently keep only the first 32 neighbours of each atom, which changes the embedding of any atom
with a denser environment (most protein atoms at a 7.5 Å cutoff).

Conventions (shared by all encoders):

* frames are batched as disjoint graphs; node ``b * N + i`` is atom ``i`` of frame ``b``;
* ``edge_index[0]`` is the source (neighbour) ``j``, ``edge_index[1]`` the target (centre) ``i``;
* ``edge_vec = pos[source] - pos[target]`` in Å; self-loops have a zero vector and distance 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Edges", "radius_graph"]


@dataclass
class Edges:
    """A batch of neighbour lists.

    Attributes
    ----------
    index : Tensor, shape (2, E), int64
        Source and target node of every edge (nodes numbered over the whole batch).
    vec : Tensor, shape (E, 3)
        ``pos[source] - pos[target]`` in Å (zero for self-loops).
    length : Tensor, shape (E,)
        Norm of ``vec`` in Å.
    num_nodes : int
        Number of nodes in the batch (frames × atoms).
    """

    index: Tensor
    vec: Tensor
    length: Tensor
    num_nodes: int


def radius_graph(pos: Tensor, cutoff: float, *, max_pairs: int = 2**26) -> Edges:
    """All pairs closer than ``cutoff`` in each frame of a batch, self-loops included.

    Parameters
    ----------
    pos : Tensor, shape (B, N, 3)
        Coordinates in Å of ``B`` frames of the same ``N`` atoms.
    cutoff : float
        Cutoff in Å; pairs with distance ``<= cutoff`` are kept.
    max_pairs : int
        Upper bound on ``frames × N × N`` handled at once (bounds temporary memory).

    Returns
    -------
    Edges
        Edges ordered by frame, then target atom, then source atom.
    """
    if pos.ndim != 3 or pos.shape[-1] != 3:
        raise ValueError(f"pos must have shape (B, N, 3), got {tuple(pos.shape)}")
    n_frames, n_atoms, _ = pos.shape
    frames_per_chunk = max(1, max_pairs // max(1, n_atoms * n_atoms))
    cutoff_sq = float(cutoff) ** 2
    indices, vectors = [], []
    for start in range(0, n_frames, frames_per_chunk):
        chunk = pos[start : start + frames_per_chunk]
        # diff[b, i, j] = pos[b, j] - pos[b, i]: vector from target i to source j
        diff = chunk[:, None, :, :] - chunk[:, :, None, :]
        within = (diff * diff).sum(-1) <= cutoff_sq
        frame, target, source = within.nonzero(as_tuple=True)
        vectors.append(diff[frame, target, source])
        offset = (frame + start) * n_atoms
        indices.append(torch.stack([source + offset, target + offset]))
    index = torch.cat(indices, dim=1) if indices else pos.new_zeros((2, 0), dtype=torch.long)
    vec = torch.cat(vectors) if vectors else pos.new_zeros((0, 3))
    return Edges(index=index, vec=vec, length=vec.norm(dim=-1), num_nodes=n_frames * n_atoms)
