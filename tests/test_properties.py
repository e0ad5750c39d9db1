"""Property tests (hypothesis): the embeddings of every encoder are invariant under rotations,
translations, permutations of the atoms and periodic images, on alanine dipeptide (22 atoms).

Few examples each (``max_examples``), in float64 so the tolerance can be tight: the point is
that random draws, not hand-picked cases, keep these symmetries.
"""

from __future__ import annotations

import functools

import mdtraj as md
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geomfeat import GeomFeaturizer, list_models
from geomfeat.trajectory import Frames

SETTINGS = settings(max_examples=4, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])
BOX = np.array([[24.0, 0.0, 0.0], [5.0, 23.0, 0.0], [-4.0, 3.0, 22.5]])  # triclinic, > 15 Å


@pytest.fixture(scope="module")
def molecule(example_files):
    """Frame 0 of the example, all atoms, Å (float64), and its atomic numbers."""
    xtc, pdb = example_files
    traj = md.load(xtc, top=pdb)[0]
    z = np.array([a.element.atomic_number for a in traj.topology.atoms])
    return traj.xyz[0].astype(np.float64) * 10.0, z


@functools.cache
def featurizer(model: str, pool: str) -> GeomFeaturizer:
    return GeomFeaturizer(model, select="all", pool=pool, features="invariant",
                          dtype="float64", progress=False)


def embed(model: str, positions: np.ndarray, z: np.ndarray, pool: str = "graph",
          box: np.ndarray | None = None) -> np.ndarray:
    return featurizer(model, pool).transform(Frames(positions[None], z, boxes=box))[0]


def rotation(q: tuple[float, float, float, float]) -> np.ndarray:
    w, x, y, z = np.asarray(q) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


quaternions = st.tuples(*[st.floats(-1, 1) for _ in range(4)]).filter(
    lambda q: np.linalg.norm(q) > 0.1)
vectors = st.tuples(*[st.floats(-100, 100) for _ in range(3)])
MODELS = list_models()


@pytest.mark.parametrize("model", MODELS)
def test_rotation_invariance(model, molecule, weights_url):
    pos, z = molecule
    expected = embed(model, pos, z)

    @SETTINGS
    @given(quaternions)
    def check(q):
        rotated = (pos - pos.mean(0)) @ rotation(q).T
        np.testing.assert_allclose(embed(model, rotated, z), expected, atol=1e-6)

    check()


@pytest.mark.parametrize("model", MODELS)
def test_translation_invariance(model, molecule, weights_url):
    pos, z = molecule
    expected = embed(model, pos, z)

    @SETTINGS
    @given(vectors)
    def check(shift):
        np.testing.assert_allclose(embed(model, pos + np.asarray(shift), z), expected,
                                   atol=1e-6)

    check()


@pytest.mark.parametrize("model", MODELS)
def test_permutation_equivariance(model, molecule, weights_url):
    """Graph vectors are invariant; atom rows follow the atoms."""
    pos, z = molecule
    graph, atoms = embed(model, pos, z), embed(model, pos, z, pool="atom")

    @SETTINGS
    @given(st.permutations(range(len(z))))
    def check(order):
        order = np.asarray(order)
        np.testing.assert_allclose(embed(model, pos[order], z[order]), graph, atol=1e-6)
        np.testing.assert_allclose(embed(model, pos[order], z[order], pool="atom"),
                                   atoms[order], atol=1e-6)

    check()


@pytest.mark.parametrize("model", MODELS)
def test_periodic_images_are_the_same_atoms(model, molecule, weights_url):
    """Moving atoms by whole box vectors (splitting the molecule) changes nothing."""
    pos, z = molecule
    centred = pos - pos.mean(0) + BOX.sum(0) / 2
    expected = embed(model, centred, z, box=BOX)

    @SETTINGS
    @given(st.lists(st.tuples(*[st.integers(-2, 2) for _ in range(3)]), min_size=len(z),
                    max_size=len(z)))
    def check(images):
        moved = centred + np.asarray(images, dtype=np.float64) @ BOX
        np.testing.assert_allclose(embed(model, moved, z, box=BOX), expected, atol=1e-6)

    check()
