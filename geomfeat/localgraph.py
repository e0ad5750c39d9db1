"""Local residue graphs: one small graph per residue and frame, for ``pool="residue-local"``.

With ``pool="residue"`` a residue's token sums its atoms' features computed on the whole
molecule, so after ``L`` layers of message passing every token has seen atoms up to ``L``
cutoffs away. ``pool="residue-local"`` instead embeds, for every frame and residue, the graph
of the residue's atoms **plus every atom within the cutoff of one of them**, and pools the
result over the residue's own atoms. A token then depends only on its residue's surroundings
within one cutoff, whatever the depth of the encoder.

Every such graph is a separate graph of one batch (so one encoder call embeds all residues of
all frames of a batch). Its nodes are the atoms described above; its edges are the pairs of the
frame's neighbour list (same vectors, minimum images included) whose two atoms are both nodes.

Numbering: graph ``g = f * R + r`` is residue ``r`` of frame ``f``; its nodes come in atom order
and its edges in the order of the frame's neighbour list (by target, then source), so for a
molecule of one residue the local graph *is* the whole graph, node for node and edge for edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .neighbors import Edges

__all__ = ["LocalGraphs", "residue_local_graphs"]


@dataclass
class LocalGraphs:
    """The local graphs of all residues of a batch of frames.

    Attributes
    ----------
    atom : Tensor, shape (K,), int64
        Node of the frame batch (``f * N + i``) that each of the ``K`` local nodes copies.
    graph : Tensor, shape (K,), int64
        Local graph of each node, ``f * R + r``.
    own : Tensor, shape (K,), bool
        Whether the node is an atom of its graph's residue (the atoms pooled into the token).
    edges : Edges
        Neighbour list over the ``K`` local nodes.
    """

    atom: Tensor
    graph: Tensor
    own: Tensor
    edges: Edges


def residue_local_graphs(edges: Edges, residues: Tensor, n_frames: int,
                         n_residues: int) -> LocalGraphs:
    """Split a batch of frame graphs into one local graph per residue and frame.

    Parameters
    ----------
    edges : Edges
        Neighbour list of ``n_frames`` frames of ``N`` atoms (nodes ``f * N + i``), ordered by
        frame, then target, as :func:`geomfeat.neighbors.radius_graph` returns it; self-loops
        included.
    residues : Tensor, shape (N,), int64
        Residue (token) index of every atom, ``0 ≤ residues < n_residues``.
    n_frames : int
        Number of frames ``B``.
    n_residues : int
        Number of residues ``R``.

    Returns
    -------
    LocalGraphs
        ``B · R`` graphs; graph ``f * R + r`` holds the atoms within the cutoff of residue
        ``r`` in frame ``f`` (the residue's own atoms included).
    """
    n_atoms = edges.num_nodes // n_frames
    source, target = edges.index
    device = source.device
    residues = residues.to(device)
    frame = torch.div(target, n_atoms, rounding_mode="floor")
    target_atom, source_atom = target - frame * n_atoms, source - frame * n_atoms
    # member[(f * R + r) * N + a]: atom a is within the cutoff of residue r in frame f
    # (self-loops make every atom a member of its own residue's graph)
    member = torch.zeros(n_frames * n_residues * n_atoms, dtype=torch.bool, device=device)
    member[(frame * n_residues + residues[target_atom]) * n_atoms + source_atom] = True
    nodes = member.nonzero().squeeze(1)  # sorted: by graph, then atom
    graph = torch.div(nodes, n_atoms, rounding_mode="floor")
    atom_in_frame = nodes - graph * n_atoms
    atom = torch.div(graph, n_residues, rounding_mode="floor") * n_atoms + atom_in_frame
    local = torch.full((member.numel(),), -1, dtype=torch.int64, device=device)
    local[nodes] = torch.arange(nodes.numel(), device=device)

    # candidate edges of every local node: all edges of the frame that end at its atom
    degree = torch.bincount(target, minlength=edges.num_nodes)
    first = torch.cumsum(degree, 0) - degree  # edges are ordered by target
    counts = degree[atom]
    node = torch.repeat_interleave(torch.arange(nodes.numel(), device=device), counts)
    start = torch.cumsum(counts, 0) - counts
    candidate = first[atom][node] + torch.arange(node.numel(), device=device) - start[node]
    source_local = local[graph[node] * n_atoms + source_atom[candidate]]
    keep = source_local >= 0  # both ends in the graph
    candidate = candidate[keep]
    local_edges = Edges(index=torch.stack((source_local[keep], node[keep])),
                        vec=edges.vec[candidate], length=edges.length[candidate],
                        num_nodes=int(nodes.numel()))
    own = residues[atom_in_frame] == graph % n_residues
    return LocalGraphs(atom=atom, graph=graph, own=own, edges=local_edges)
