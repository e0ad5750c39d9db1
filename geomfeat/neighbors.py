"""Neighbour lists in plain PyTorch (no torch-cluster), optionally periodic.

The encoders were pre-trained with the neighbour list "every pair within the cutoff, self-loops
included" and geomfeat reproduces exactly that: **no cap on the number of neighbours**. Some
implementations (torch-cluster's ``radius_graph`` with its default ``max_num_neighbors=32``)
silently keep only the first 32 neighbours of each atom, which changes the embedding of any atom
with a denser environment (most protein atoms at a 7.5 Å cutoff).

Conventions (shared by all encoders):

* frames are batched as disjoint graphs; node ``b * N + i`` is atom ``i`` of frame ``b``;
* ``edge_index[0]`` is the source (neighbour) ``j``, ``edge_index[1]`` the target (centre) ``i``;
* ``edge_vec = pos[source] - pos[target]`` in Å; self-loops have a zero vector and distance 0;
* edges are ordered by frame, then target, then source, whatever the search method.

Two search methods give identical edges: a dense all-pairs search (``O(N²)`` per frame, fast for
small selections) and a cell list (``O(N)``), used from :data:`CELL_LIST_MIN_ATOMS` atoms on.

Periodic boundaries: with a ``box`` (rows are the box vectors, Å), pair vectors are minimum
images, for orthorhombic and triclinic boxes. The cutoff must then be at most half the box's
smallest perpendicular width, so that at most one image of an atom is within the cutoff.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["CELL_LIST_MIN_ATOMS", "Edges", "minimum_image", "perpendicular_widths",
           "radius_graph"]

#: Selections of at least this many atoms use the cell list by default.
CELL_LIST_MIN_ATOMS = 3000

_OFFSETS = torch.tensor(list(itertools.product((-1, 0, 1), repeat=3)))


@dataclass
class Edges:
    """A batch of neighbour lists.

    Attributes
    ----------
    index : Tensor, shape (2, E), int64
        Source and target node of every edge (nodes numbered over the whole batch).
    vec : Tensor, shape (E, 3)
        ``pos[source] - pos[target]`` in Å (minimum image with a box; zero for self-loops).
    length : Tensor, shape (E,)
        Norm of ``vec`` in Å.
    num_nodes : int
        Number of nodes in the batch (frames × atoms).
    """

    index: Tensor
    vec: Tensor
    length: Tensor
    num_nodes: int


def perpendicular_widths(box: Tensor) -> Tensor:
    """Distances between opposite faces of boxes ``(..., 3, 3)`` (rows = box vectors), Å."""
    a, b, c = box[..., 0, :], box[..., 1, :], box[..., 2, :]
    volume = torch.linalg.det(box).abs()
    areas = torch.stack([torch.linalg.cross(b, c).norm(dim=-1),
                         torch.linalg.cross(c, a).norm(dim=-1),
                         torch.linalg.cross(a, b).norm(dim=-1)], dim=-1)
    return volume.unsqueeze(-1) / areas


def _is_orthorhombic(box: Tensor) -> bool:
    return bool((box - torch.diag_embed(torch.diagonal(box, dim1=-2, dim2=-1))).abs().max() == 0)


def minimum_image(vec: Tensor, box: Tensor) -> Tensor:
    """Shortest periodic image of displacement vectors.

    Parameters
    ----------
    vec : Tensor, shape (..., 3)
        Displacements in Å.
    box : Tensor, shape (3, 3)
        Box vectors as rows, Å.

    Returns
    -------
    Tensor, shape (..., 3)
        ``vec + n @ box`` with the integer ``n`` that makes it shortest. Exact for any cell
        whose smallest perpendicular width is at least twice the longest result of interest.
    """
    frac = vec @ torch.linalg.inv(box)
    vec = (frac - torch.round(frac)) @ box
    if _is_orthorhombic(box):
        return vec
    # triclinic: rounding fractional coordinates can miss the nearest image; try the neighbours
    shifts = _OFFSETS.to(device=vec.device, dtype=vec.dtype) @ box  # (27, 3)
    best = vec
    best_sq = (vec * vec).sum(-1)
    for shift in shifts:
        trial = vec + shift
        trial_sq = (trial * trial).sum(-1)
        closer = trial_sq < best_sq
        best = torch.where(closer.unsqueeze(-1), trial, best)
        best_sq = torch.where(closer, trial_sq, best_sq)
    return best


def _dense(pos: Tensor, cutoff_sq: float, box: Tensor | None, max_pairs: int
           ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(frame, target, source, vec) of all pairs within the cutoff, frame by frame chunks."""
    n_frames, n_atoms, _ = pos.shape
    step = max(1, max_pairs // max(1, n_atoms * n_atoms))
    parts = []
    for start in range(0, n_frames, step):
        chunk = pos[start : start + step]
        # diff[b, i, j] = pos[b, j] - pos[b, i]: vector from target i to source j
        diff = chunk[:, None, :, :] - chunk[:, :, None, :]
        if box is not None:
            diff = torch.stack([minimum_image(d, bx) for d, bx in
                                zip(diff, box[start : start + step], strict=True)])
        frame, target, source = ((diff * diff).sum(-1) <= cutoff_sq).nonzero(as_tuple=True)
        parts.append((frame + start, target, source, diff[frame, target, source]))
    return tuple(torch.cat(p) for p in zip(*parts, strict=True))  # type: ignore[return-value]


def _cell_list(pos: Tensor, cutoff: float, box: Tensor | None, atoms_per_chunk: int = 2048
               ) -> tuple[Tensor, Tensor, Tensor]:
    """(target, source, vec) of all pairs within the cutoff in one frame ``pos (N, 3)``."""
    n_atoms = pos.shape[0]
    device = pos.device
    if box is None:
        origin = pos.min(dim=0).values
        extent = pos.max(dim=0).values - origin
        n_cells = torch.clamp((extent / cutoff).floor().long() + 1, min=1)
        cell = ((pos - origin) / cutoff).floor().long().clamp(min=torch.zeros_like(n_cells),
                                                             max=n_cells - 1)
    else:
        n_cells = (perpendicular_widths(box) / cutoff).floor().long()  # each cell >= cutoff wide
        frac = pos @ torch.linalg.inv(box)
        frac = frac - frac.floor()
        cell = (frac * n_cells).floor().long().clamp(max=n_cells - 1)
    nx, ny, nz = (int(v) for v in n_cells)
    cell_id = (cell[:, 0] * ny + cell[:, 1]) * nz + cell[:, 2]
    order = torch.argsort(cell_id, stable=True)
    counts = torch.bincount(cell_id, minlength=nx * ny * nz)
    starts = torch.cumsum(counts, 0) - counts
    offsets = _OFFSETS.to(device)
    targets, sources, vectors = [], [], []
    cutoff_sq = float(cutoff) ** 2
    for lo in range(0, n_atoms, atoms_per_chunk):
        atoms = torch.arange(lo, min(lo + atoms_per_chunk, n_atoms), device=device)
        neighbour = cell[atoms].unsqueeze(1) + offsets  # (A, 27, 3)
        if box is None:
            valid = ((neighbour >= 0) & (neighbour < n_cells)).all(-1)
        else:
            neighbour = neighbour % n_cells
            valid = torch.ones(neighbour.shape[:2], dtype=torch.bool, device=device)
        nid = (neighbour[..., 0] * ny + neighbour[..., 1]) * nz + neighbour[..., 2]
        nid = torch.where(valid, nid, 0)
        count = torch.where(valid, counts[nid], 0).reshape(-1)
        first = starts[nid].reshape(-1)
        total = int(count.sum())
        segment = torch.repeat_interleave(torch.arange(count.numel(), device=device), count,
                                          output_size=total)
        within = torch.arange(total, device=device) - (torch.cumsum(count, 0) - count)[segment]
        source = order[first[segment] + within]
        target = atoms[segment // offsets.shape[0]]
        vec = pos[source] - pos[target]
        if box is not None:
            vec = minimum_image(vec, box)
        keep = (vec * vec).sum(-1) <= cutoff_sq
        targets.append(target[keep])
        sources.append(source[keep])
        vectors.append(vec[keep])
    target, source, vec = torch.cat(targets), torch.cat(sources), torch.cat(vectors)
    key = torch.argsort(target * n_atoms + source)
    return target[key], source[key], vec[key]


def radius_graph(pos: Tensor, cutoff: float, *, box: Tensor | None = None,
                 method: str = "auto", max_pairs: int = 2**26) -> Edges:
    """All pairs closer than ``cutoff`` in each frame of a batch, self-loops included.

    Parameters
    ----------
    pos : Tensor, shape (B, N, 3)
        Coordinates in Å of ``B`` frames of the same ``N`` atoms.
    cutoff : float
        Cutoff in Å; pairs with distance ``<= cutoff`` are kept.
    box : Tensor, shape (B, 3, 3), optional
        Periodic box of every frame (rows are box vectors, Å); ``None`` for no periodicity.
    method : {"auto", "dense", "cell"}
        Search method; ``"auto"`` takes the cell list from :data:`CELL_LIST_MIN_ATOMS` atoms on.
        The edges are the same.
    max_pairs : int
        Upper bound on ``frames × N × N`` handled at once by the dense search.

    Returns
    -------
    Edges
        Edges ordered by frame, then target atom, then source atom.

    Raises
    ------
    ValueError
        If a box is narrower than twice the cutoff (the message names the frame in the batch).
    """
    if pos.ndim != 3 or pos.shape[-1] != 3:
        raise ValueError(f"pos must have shape (B, N, 3), got {tuple(pos.shape)}")
    n_frames, n_atoms, _ = pos.shape
    if box is not None:
        box = box.to(pos)
        widths = perpendicular_widths(box).min(dim=-1).values
        too_small = widths < 2 * cutoff
        if bool(too_small.any()):
            b = int(too_small.nonzero()[0])
            raise ValueError(f"frame {b} of the batch: the periodic box is "
                             f"{float(widths[b]):.2f} Å wide, less than twice the cutoff "
                             f"({cutoff} Å)")
    if method == "auto":
        method = "cell" if n_atoms >= CELL_LIST_MIN_ATOMS else "dense"
    if method == "dense":
        frame, target, source, vec = _dense(pos, float(cutoff) ** 2, box, max_pairs)
    elif method == "cell":
        parts = [_cell_list(pos[b], cutoff, None if box is None else box[b])
                 for b in range(n_frames)]
        frame = torch.cat([torch.full_like(p[0], b) for b, p in enumerate(parts)])
        target, source, vec = (torch.cat(p) for p in zip(*parts, strict=True))
    else:
        raise ValueError(f"unknown method {method!r}; choose from auto, dense, cell")
    offset = frame * n_atoms
    index = torch.stack([source + offset, target + offset])
    return Edges(index=index, vec=vec, length=vec.norm(dim=-1), num_nodes=n_frames * n_atoms)
