"""The neighbour list: every pair within the cutoff, self-loops included, no neighbour cap."""

from __future__ import annotations

import numpy as np
import torch

from geomfeat.neighbors import radius_graph


def brute_force(pos: np.ndarray, cutoff: float) -> set[tuple[int, int]]:
    n_frames, n_atoms = pos.shape[:2]
    pairs = set()
    for b in range(n_frames):
        d = np.linalg.norm(pos[b, None] - pos[b, :, None], axis=-1)
        for i, j in zip(*np.nonzero(d <= cutoff), strict=True):
            pairs.add((b * n_atoms + j, b * n_atoms + i))
    return pairs


def test_edges_equal_brute_force_on_random_frames():
    pos = np.random.default_rng(0).uniform(0, 15, size=(3, 40, 3))
    edges = radius_graph(torch.tensor(pos), 5.0, max_pairs=2000)  # forces several chunks
    got = set(map(tuple, edges.index.T.tolist()))
    assert got == brute_force(pos, 5.0)
    assert len(got) == edges.index.shape[1]
    assert edges.num_nodes == 120


def test_vectors_point_from_target_to_source_and_self_loops_are_zero():
    pos = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 2.0, 2.0]]], dtype=torch.float64)
    edges = radius_graph(pos, 5.0)
    flat = pos.reshape(-1, 3)
    source, target = edges.index
    assert torch.equal(edges.vec, flat[source] - flat[target])
    loops = source == target
    assert loops.sum() == 2 and torch.all(edges.length[loops] == 0)
    assert torch.allclose(edges.length[~loops], torch.tensor([3.0, 3.0], dtype=torch.float64))
    assert edges.vec.dtype == torch.float64


def test_no_cap_on_neighbours():
    # 60 atoms inside a 2 Å cube: every atom has 59 neighbours (+ itself) within 7.5 Å
    pos = torch.rand(1, 60, 3) * 2.0
    edges = radius_graph(pos, 7.5)
    assert edges.index.shape[1] == 60 * 60
    assert torch.all(torch.bincount(edges.index[1]) == 60)


def test_frames_are_disjoint_graphs():
    pos = torch.zeros(4, 5, 3)  # all atoms of a frame on top of each other
    edges = radius_graph(pos, 1.0)
    frame_of = edges.index // 5
    assert torch.equal(frame_of[0], frame_of[1])
    assert edges.index.shape[1] == 4 * 25
