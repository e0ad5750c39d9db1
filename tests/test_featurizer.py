"""GeomFeaturizer: inputs from mdtraj, MDAnalysis and arrays; shapes; pooling; deeptime API."""

from __future__ import annotations

import mdtraj as md
import numpy as np
import pytest

from geomfeat import GeomFeaturizer

H = 64


@pytest.fixture(scope="module")
def traj(example_files):
    xtc, pdb = example_files
    return md.load(xtc, top=pdb)[:12]


@pytest.mark.parametrize("pool, lead", [("graph", ()), ("residue", (3,)), ("atom", (10,))])
@pytest.mark.parametrize("features, tail", [("scalar", (H,)), ("invariant", (2 * H,)),
                                            ("equivariant", (4, H))])
def test_output_shapes(traj, weights_url, pool, lead, features, tail):
    out = GeomFeaturizer(pool=pool, features=features).transform(traj)
    assert out.shape == (12, *lead, *tail)
    assert out.dtype == np.float32


def test_mdtraj_and_mdanalysis_give_the_same_embedding(traj, universe, weights_url):
    featurizer = GeomFeaturizer(select="all", pool="residue", features="invariant")
    from_mdtraj = featurizer.transform(traj)
    from_mda = featurizer.transform(universe, stop=12)
    assert np.abs(from_mdtraj - from_mda).max() <= 1e-5


def test_mdtraj_nanometres_are_converted_to_angstrom(traj, weights_url):
    featurizer = GeomFeaturizer(select="all")
    z = np.array([a.element.atomic_number for a in traj.topology.atoms])
    from_arrays = featurizer.transform((traj.xyz * 10.0, z))
    assert np.abs(featurizer.transform(traj) - from_arrays).max() <= 1e-5


def test_pooling_is_consistent_with_atoms(traj, weights_url):
    atoms = GeomFeaturizer(pool="atom", features="equivariant").transform(traj)
    graph_sum = GeomFeaturizer(pool="graph", features="equivariant").transform(traj)
    graph_mean = GeomFeaturizer(pool="graph", reduce="mean",
                                features="equivariant").transform(traj)
    residue = GeomFeaturizer(pool="residue", features="equivariant").transform(traj)
    np.testing.assert_allclose(graph_sum, atoms.sum(1), atol=1e-4)
    np.testing.assert_allclose(graph_mean, atoms.mean(1), atol=1e-5)
    np.testing.assert_allclose(residue.sum(1), graph_sum, atol=1e-4)
    # heavy atoms of ACE (CH3, C, O), ALA (N, CA, CB, C, O) and NME (N, CH3)
    np.testing.assert_allclose(residue[:, 0], atoms[:, :3].sum(1), atol=1e-4)
    invariant = GeomFeaturizer(features="invariant").transform(traj)
    np.testing.assert_allclose(invariant[:, :H], graph_sum[:, 0], atol=1e-5)
    np.testing.assert_allclose(invariant[:, H:], np.linalg.norm(graph_sum[:, 1:], axis=1),
                               atol=1e-4)


def test_selection_kinds_agree(traj, universe, weights_url):
    heavy = [a.index for a in traj.topology.atoms if a.element.symbol != "H"]
    by_default = GeomFeaturizer().transform(traj)
    by_index = GeomFeaturizer(select=np.array(heavy)).transform(traj)
    by_mdtraj_string = GeomFeaturizer(select="not element H").transform(traj)
    by_mda_string = GeomFeaturizer(select="not element H").transform(universe, stop=12)
    for other in (by_index, by_mdtraj_string, by_mda_string):
        assert np.abs(other - by_default).max() <= 1e-5


def test_atomgroup_input_embeds_only_the_group(universe, traj, weights_url):
    group = universe.select_atoms("resname ALA")
    out = GeomFeaturizer(select="all", pool="atom").transform(group, stop=2)
    assert out.shape == (2, len(group), H)
    sub = traj.atom_slice(traj.topology.select("resname ALA"))[:2]
    assert np.abs(GeomFeaturizer(select="all", pool="atom").transform(sub) - out).max() <= 1e-5


def test_start_stop_stride_equal_slicing(traj, universe, weights_url):
    featurizer = GeomFeaturizer(batch_size=2)
    full = featurizer.transform(traj)
    np.testing.assert_allclose(featurizer.transform(traj, start=1, stop=10, stride=3),
                               full[1:10:3], atol=1e-5)
    np.testing.assert_allclose(featurizer.transform(universe, start=1, stop=10, stride=3),
                               full[1:10:3], atol=1e-5)


def test_batch_size_does_not_change_the_result(traj, weights_url):
    one = GeomFeaturizer(batch_size=1).transform(traj)
    many = GeomFeaturizer(batch_size=5).transform(traj)
    np.testing.assert_allclose(one, many, atol=1e-5)


def test_list_of_trajectories_gives_list_of_arrays(traj, weights_url):
    featurizer = GeomFeaturizer()
    out = featurizer.transform([traj[:4], traj[4:]])
    assert isinstance(out, list) and [a.shape for a in out] == [(4, H), (8, H)]
    np.testing.assert_allclose(np.concatenate(out), featurizer.transform(traj), atol=1e-5)


def test_deeptime_conventions(traj, weights_url):
    from deeptime.decomposition import TICA

    featurizer = GeomFeaturizer(pool="graph", reduce="mean")
    assert featurizer.fit(traj) is featurizer and featurizer.fetch_model() is featurizer
    params = featurizer.get_params()
    assert params["model"] == "visnet-denali" and params["reduce"] == "mean"
    out = featurizer.fit_transform([traj, traj[::-1]])
    tica = TICA(lagtime=2, dim=2).fit(out).fetch_model()
    assert tica.transform(out[0]).shape == (12, 2)
    assert np.array_equal(featurizer(traj), out[0])


def test_float64_encoder_close_to_float32(traj, weights_url):
    single = GeomFeaturizer(select="all").transform(traj)
    double = GeomFeaturizer(select="all", dtype="float64").transform(traj)
    assert double.dtype == np.float32
    assert np.abs(single - double).max() <= 1e-4


def test_featurizer_pickles_without_its_encoder(traj, weights_url):
    import pickle

    featurizer = GeomFeaturizer()
    expected = featurizer.transform(traj)
    clone = pickle.loads(pickle.dumps(featurizer))
    assert clone._encoder is None
    np.testing.assert_array_equal(clone.transform(traj), expected)


def test_automatic_batch_size_follows_the_memory_budget(traj, weights_url):
    featurizer = GeomFeaturizer()
    fixed = GeomFeaturizer(batch_size=4).transform(traj)
    np.testing.assert_allclose(featurizer.transform(traj), fixed, atol=1e-5)
    per_frame = 100 * featurizer.encoder.bytes_per_edge  # 10 heavy atoms, all within 7.5 Å
    reader = featurizer.reader(traj)
    frames = reader.frame_indices()
    assert featurizer.resolve_batch_size(reader, frames) == featurizer.auto_batch_size(100)
    assert GeomFeaturizer(batch_size=7).resolve_batch_size(reader, frames) == 7
    assert featurizer.auto_batch_size(100) == min(16384, int(2 * 2**30 / per_frame))
    assert featurizer.auto_batch_size(10_000) == int(2 * 2**30 / (100 * per_frame))
    tiny = GeomFeaturizer(memory_budget=3 * per_frame / 2**30)
    assert tiny.auto_batch_size(100) == 3
    np.testing.assert_allclose(tiny.transform(traj), fixed, atol=1e-5)
    assert GeomFeaturizer(memory_budget=1e-9).auto_batch_size(100) == 1
