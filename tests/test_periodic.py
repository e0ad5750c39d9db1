"""Periodic boundaries: a molecule split across the box edge embeds like the whole molecule."""

from __future__ import annotations

import MDAnalysis as mda
import mdtraj as md
import numpy as np
import pytest
import torch
from MDAnalysis.coordinates.memory import MemoryReader

from geomfeat import GeomFeaturizer, InputError, list_models
from geomfeat.neighbors import perpendicular_widths, radius_graph
from geomfeat.trajectory import Frames

ORTHORHOMBIC = np.diag([20.0, 21.0, 22.0])
TRICLINIC = np.array([[20.0, 0.0, 0.0], [6.0, 19.0, 0.0], [-5.0, 4.0, 19.5]])


def wrap(pos: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Put every atom into the unit cell: the molecule ends up split across faces."""
    frac = pos @ np.linalg.inv(box)
    return (frac - np.floor(frac)) @ box


@pytest.fixture(scope="module")
def whole(example_files):
    """Three frames of the example as float64 Frames (Å), no box."""
    xtc, pdb = example_files
    traj = md.load(xtc, top=pdb)[:3]
    z = np.array([a.element.atomic_number for a in traj.topology.atoms])
    return Frames(traj.xyz.astype(np.float64) * 10.0, z)


def split_copy(frames: Frames, box: np.ndarray) -> Frames:
    """The frames moved onto a corner of ``box`` (Å) and wrapped, with the box attached."""
    pos = frames.positions
    corner = box.sum(0)  # the far corner: all three faces cut through the molecule
    moved = pos - pos.mean(1, keepdims=True) + corner
    return Frames(wrap(moved, box), frames.atomic_numbers, boxes=box)


def test_boxes_are_large_enough_for_the_cutoff():
    for box in (ORTHORHOMBIC, TRICLINIC):
        assert perpendicular_widths(torch.tensor(box)).min() > 15.0


@pytest.mark.parametrize("model", list_models())
@pytest.mark.parametrize("box", [ORTHORHOMBIC, TRICLINIC], ids=["orthorhombic", "triclinic"])
def test_split_molecule_embeds_like_whole_molecule(model, box, whole, weights_url):
    split = split_copy(whole, box)
    shift = split.positions - whole.positions
    assert np.ptp(shift, axis=1).max() > 10.0, "the molecule must really be split"
    featurizer = GeomFeaturizer(model, select="all", pool="atom", features="equivariant",
                                dtype="float64")
    expected = featurizer.transform(whole)
    assert np.abs(featurizer.transform(split) - expected).max() <= 1e-5
    no_pbc = GeomFeaturizer(model, select="all", pool="atom", pbc=False).transform(split)
    assert np.abs(no_pbc - expected[:, :, 0]).max() > 1e-2  # the cell really matters here


def test_mdtraj_and_mdanalysis_cells_are_used(whole, example_files, weights_url):
    _, pdb = example_files
    split = split_copy(whole, TRICLINIC)
    traj = md.load(pdb)
    traj.xyz = (split.positions / 10.0).astype(np.float32)
    traj.unitcell_vectors = np.repeat(TRICLINIC[None] / 10.0, 3, 0).astype(np.float32)
    universe = mda.Universe(str(pdb))
    dimensions = np.array([*np.linalg.norm(TRICLINIC, axis=1), *_angles(TRICLINIC)])
    universe.load_new(split.positions, format=MemoryReader, dimensions=dimensions)
    featurizer = GeomFeaturizer(select="all")
    expected = featurizer.transform(whole)
    # float32 storage of the wrapped coordinates (up to ~60 Å) limits the agreement
    assert np.abs(featurizer.transform(traj) - expected).max() <= 1e-3
    assert np.abs(featurizer.transform(universe) - expected).max() <= 1e-3


def _angles(box: np.ndarray) -> list[float]:
    a, b, c = box
    cos = [np.dot(b, c) / (np.linalg.norm(b) * np.linalg.norm(c)),
           np.dot(a, c) / (np.linalg.norm(a) * np.linalg.norm(c)),
           np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))]
    return list(np.degrees(np.arccos(cos)))


def test_box_smaller_than_twice_the_cutoff_names_the_frame(whole, weights_url):
    boxes = np.repeat(np.diag([20.0, 20.0, 20.0])[None], 3, 0)
    boxes[2] = np.diag([12.0, 20.0, 20.0])  # 12 Å < 2 × 7.5 Å
    small = Frames(whole.positions, whole.atomic_numbers, boxes=boxes)
    with pytest.raises(InputError, match=r"frame 2 .* 12\.00 Å wide"):
        GeomFeaturizer(batch_size=2).transform(small)


@pytest.mark.parametrize("box", [None, ORTHORHOMBIC * 3, TRICLINIC * 3],
                         ids=["open", "orthorhombic", "triclinic"])
def test_cell_list_edges_equal_dense_edges_on_random_systems(box):
    rng = np.random.default_rng(3)
    extent = 60.0 if box is None else 1.0
    frac = rng.uniform(0, 1, size=(2, 900, 3))
    pos = torch.tensor(frac * extent if box is None else frac @ box)
    boxes = None if box is None else torch.tensor(box).expand(2, 3, 3)
    dense = radius_graph(pos, 7.5, box=boxes, method="dense")
    cells = radius_graph(pos, 7.5, box=boxes, method="cell")
    assert torch.equal(dense.index, cells.index)
    assert torch.allclose(dense.vec, cells.vec, atol=1e-12)


@pytest.mark.slow
def test_cell_list_edges_equal_dense_edges_on_a_protein(oracle):
    ref = oracle("visnet-denali")
    pos = torch.tensor(ref["t4l_all__pos"], dtype=torch.float64)
    dense = radius_graph(pos, 7.5, method="dense")
    cells = radius_graph(pos, 7.5, method="cell")
    assert dense.index.shape[1] == 342_257
    assert torch.equal(dense.index, cells.index)
    assert torch.equal(dense.vec, cells.vec)


def test_minimum_image_with_many_atoms_uses_the_cell_list(whole):
    pos = torch.tensor(np.random.default_rng(5).uniform(0, 45, size=(1, 3200, 3)))
    box = torch.diag(torch.tensor([45.0, 45.0, 45.0], dtype=torch.float64)).expand(1, 3, 3)
    auto = radius_graph(pos, 5.0, box=box)
    dense = radius_graph(pos, 5.0, box=box, method="dense")
    assert torch.equal(auto.index, dense.index)
