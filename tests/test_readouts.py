"""Readouts: ``layers=`` (outputs after chosen interaction layers) for every encoder."""

from __future__ import annotations

import json

import mdtraj as md
import numpy as np
import pytest
import torch
from conftest import random_rotation

from geomfeat import GeomFeaturizer, list_models
from geomfeat.cli import main
from geomfeat.encoders import ARCHITECTURES, resolve_layers
from geomfeat.errors import InputError
from geomfeat.neighbors import radius_graph
from geomfeat.pooling import combine_features, pool_atoms
from geomfeat.registry import get_model_card
from geomfeat.trajectory import Frames

MODELS = list_models()
H = 64
POOLS = [("graph", ()), ("residue", (3,)), ("atom", (10,))]
FEATURES = {"scalar": lambda s: (s * H,), "invariant": lambda s: (s * 2 * H,),
            "equivariant": lambda s: (4, s * H)}


@pytest.fixture(scope="module")
def traj(example_files):
    xtc, pdb = example_files
    return md.load(xtc, top=pdb)[:4]


def graph_of(traj, cutoff: float):
    """Atomic numbers and neighbour list of the heavy atoms of ``traj`` (nm → Å)."""
    heavy = traj.topology.select("not element H")
    pos = torch.tensor(traj.xyz[:, heavy] * 10.0)
    z = torch.tensor([traj.topology.atom(i).element.atomic_number for i in heavy])
    return z.repeat(len(traj)), radius_graph(pos, cutoff), len(heavy)


#: (pool, reduce, features) combinations that cover every option (CPU time is scarce in CI).
COMBINATIONS = [("graph", "sum", "scalar"), ("residue", "mean", "invariant"),
                ("atom", "sum", "equivariant"), ("graph", "mean", "equivariant"),
                ("residue", "sum", "scalar")]


def todays_embedding(x, vec, n_frames: int, pool: str, reduce: str, features: str) -> np.ndarray:
    """The embedding as geomfeat computed it before readouts existed: final output, pooled."""
    x, vec = x.view(n_frames, 10, -1), vec.view(n_frames, 10, 3, -1)
    residues = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1, 2, 2])  # heavy atoms of ACE, ALA, NME
    x = pool_atoms(x, pool, reduce, residues, 3)
    vec = pool_atoms(vec, pool, reduce, residues, 3)
    return combine_features(x, vec, features).numpy()


@pytest.mark.parametrize("model", MODELS)
def test_last_layer_is_the_final_output_bit_for_bit(model, traj, encoder):
    enc = encoder(model, torch.float32)
    z, edges, _ = graph_of(traj, enc.cutoff)
    with torch.inference_mode():
        x, vec = enc(z, edges)
        [(x_last, vec_last)] = enc(z, edges, layers="last")
        by_index = enc(z, edges, layers=[enc.num_layers - 1])[0]
    assert torch.equal(x_last, x) and torch.equal(vec_last, vec)
    assert torch.equal(by_index[0], x) and torch.equal(by_index[1], vec)
    for pool, reduce, features in COMBINATIONS:
        out = GeomFeaturizer(model, pool=pool, reduce=reduce, features=features,
                             layers="last").transform(traj)
        expected = todays_embedding(x, vec, len(traj), pool, reduce, features)
        np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("model", MODELS)
def test_all_layers_shapes_and_last_block(model, traj, weights_url):
    n_layers = get_model_card(model).hyperparameters["num_layers"]
    for (pool, lead), (features, tail) in zip(POOLS, FEATURES.items(), strict=True):
        last = GeomFeaturizer(model, pool=pool, features=features).transform(traj)
        every = GeomFeaturizer(model, pool=pool, features=features, layers="all").transform(traj)
        assert every.dtype == np.float32
        assert every.shape == (4, *lead, *tail(n_layers))
        block = last.shape[-1]
        np.testing.assert_array_equal(every[..., -block:], last)
    two = GeomFeaturizer(model, pool=pool, features=features, layers=[0, -1]).transform(traj)
    assert two.shape == (4, *lead, *tail(2))
    np.testing.assert_array_equal(two[..., :block], every[..., :block])
    np.testing.assert_array_equal(two[..., block:], last)
    assert not np.allclose(two[..., :block], two[..., block:])  # layer 0 is not the last


@pytest.mark.parametrize("model", MODELS)
def test_layer_i_is_the_output_of_the_encoder_cut_after_layer_i(model, traj, encoder):
    """The definition of a readout: the final output head applied after fewer layers."""
    full = encoder(model, torch.float64)
    card = get_model_card(model)
    z, edges, _ = graph_of(traj, full.cutoff)
    edges.vec, edges.length = edges.vec.double(), edges.length.double()
    for i in (0, 1):
        cut = ARCHITECTURES[card.architecture](**{**card.hyperparameters, "num_layers": i + 1})
        wanted = cut.state_dict()
        cut.load_state_dict({k: v for k, v in full.state_dict().items() if k in wanted})
        cut = cut.double().eval()
        with torch.inference_mode():
            x_cut, vec_cut = cut(z, edges)
            [(x_i, vec_i)] = full(z, edges, layers=[i])
        torch.testing.assert_close(x_i, x_cut, rtol=0, atol=1e-10)
        torch.testing.assert_close(vec_i, vec_cut, rtol=0, atol=1e-10)


@pytest.mark.parametrize("model", MODELS)
def test_a_pass_stopped_and_resumed_at_any_layer_is_the_whole_pass_bit_for_bit(model, traj,
                                                                              encoder):
    """The staged API (initial_state, interact, readout) that fine-tuning builds on."""
    enc = encoder(model, torch.float32)
    z, edges, _ = graph_of(traj, enc.cutoff)
    with torch.inference_mode():
        x, vec = enc(z, edges)
        start = enc.initial_state(z, edges)
        assert start.layer == 0
        states = list(enc.interact(start))
        assert [s.layer for s in states] == list(range(1, enc.num_layers + 1))
        for k in range(enc.num_layers + 1):
            lower = enc.run_layers(start, k)
            assert lower.layer == k
            x_k, vec_k = enc.readout(enc.run_layers(lower))
            assert torch.equal(x_k, x) and torch.equal(vec_k, vec), k
        with pytest.raises(ValueError, match="cannot run layers"):
            enc.run_layers(states[1], 1)
    assert len(enc.interaction_layers) == enc.num_layers


def test_blocks_follow_the_order_given_and_invariants_are_per_layer(traj, weights_url):
    forward = GeomFeaturizer(layers=[1, 4], features="invariant").transform(traj)
    backward = GeomFeaturizer(layers=[4, 1], features="invariant").transform(traj)
    np.testing.assert_array_equal(forward, np.concatenate(np.split(backward, 2, -1)[::-1], -1))
    scalar = GeomFeaturizer(layers=[1, 4]).transform(traj)
    vectors = GeomFeaturizer(layers=[1, 4], features="equivariant").transform(traj)[:, 1:]
    norms = np.linalg.norm(vectors, axis=1)
    expected = np.concatenate([scalar[:, :H], norms[:, :H], scalar[:, H:], norms[:, H:]], -1)
    np.testing.assert_allclose(forward, expected, atol=1e-5)


def test_every_layer_is_rotation_invariant(traj, weights_url):
    pos = traj.xyz[:2].astype(np.float64) * 10.0
    z = np.array([a.element.atomic_number for a in traj.topology.atoms])
    moved = pos @ random_rotation(3).T + np.array([4.0, -9.0, 1.5])
    featurizer = GeomFeaturizer(select="all", layers="all", features="invariant")
    np.testing.assert_allclose(featurizer.transform((moved, z)), featurizer.transform((pos, z)),
                               atol=1e-4)


@pytest.mark.parametrize("layers, message", [
    ("first", r"unknown layers 'first'"),
    (6, r"layer 6 does not exist: the encoder has 6 interaction layers"),
    ([0, -7], r"layer -7 does not exist"),
    ([], r"layers is empty"),
    ([2, 2], r"name a layer twice"),
    ([5, -1], r"name a layer twice \(as resolved: \[5, 5\]\)"),
    ([0.5], r"must be 'last', 'all' or integers, got 0.5"),
    ([True], r"must be 'last', 'all' or integers"),
])
def test_invalid_layers_are_refused_when_the_featurizer_is_made(layers, message):
    with pytest.raises(ValueError, match=message):
        GeomFeaturizer(layers=layers)


def test_resolve_layers():
    assert resolve_layers("last", 3) == (2,)
    assert resolve_layers("all", 3) == (0, 1, 2)
    assert resolve_layers(-1, 6) == (5,)
    assert resolve_layers([4, np.int64(1), -6], 6) == (4, 1, 0)
    assert GeomFeaturizer("tensornet-denali", layers="all").layer_indices == (0, 1, 2)


def test_more_layers_give_smaller_automatic_batches(weights_url):
    last, every = GeomFeaturizer(), GeomFeaturizer(layers="all")
    assert every.auto_batch_size(100) == last.auto_batch_size(100)  # edges alone: same
    assert last.auto_batch_size(100, 10) == last.auto_batch_size(100)  # one layer: unchanged
    assert every.auto_batch_size(1000, 100) < last.auto_batch_size(1000, 100)


def test_cli_layers_round_trip(example_files, tmp_path, capsys, weights_url):
    xtc, pdb = example_files
    out = tmp_path / "layers.npy"
    code = main(["embed", str(xtc), str(pdb), "-o", str(out), "--layers", "0,2,5",
                 "--pool", "residue-local", "--features", "invariant", "--stop", "3", "-q"])
    assert code == 0, capsys.readouterr().err
    emb = np.load(out)
    assert emb.shape == (3, 3, 3 * 2 * H) and emb.dtype == np.float32
    expected = GeomFeaturizer(pool="residue-local", features="invariant",
                              layers=[0, 2, 5]).transform(md.load(xtc, top=pdb)[:3])
    np.testing.assert_array_equal(emb, expected)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["layers"] == [0, 2, 5] and sidecar["n_layers"] == 6
    assert sidecar["pool"] == "residue-local"
    assert sidecar["shape"] == [3, 3, 3 * 2 * H]

    out = tmp_path / "last.npy"
    assert main(["embed", str(xtc), str(pdb), "-o", str(out), "--layers=-1", "--stop", "2",
                 "-q"]) == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["layers"] == [5] and sidecar["shape"] == [2, H]


def test_cli_bad_layers_is_one_line_and_writes_nothing(example_files, tmp_path, capsys):
    xtc, pdb = example_files
    command = ["embed", str(xtc), str(pdb), "-o", str(tmp_path / "x.npy"), "-q"]
    with pytest.raises(SystemExit) as caught:  # argparse: usage line and status 2
        main([*command, "--layers", "0,x"])
    assert caught.value.code == 2
    assert "expected 'last', 'all' or comma-separated layer indices" in capsys.readouterr().err
    assert main([*command, "--layers", "9"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("geomfeat: error:") and "layer 9 does not exist" in err
    assert err.count("\n") == 1
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------ pool="residue-local"
def test_local_token_is_the_residue_embedded_with_its_neighbours_alone(traj, weights_url):
    """Token (frame f, residue r) = embed the atoms within the cutoff of r, pool r's atoms."""
    model, cutoff = "tensornet-denali", 5.0  # the smallest cutoff: ala2 is not one neighbourhood
    pos = traj.xyz[:2].astype(np.float64) * 10.0
    z = np.array([a.element.atomic_number for a in traj.topology.atoms])
    residue = np.array([a.residue.index for a in traj.topology.atoms])
    local = GeomFeaturizer(model, select="all", pool="residue-local", reduce="mean",
                           features="equivariant", layers=[0, -1]).transform(traj[:2])
    assert local.shape == (2, 3, 4, 2 * H)
    atoms = GeomFeaturizer(model, select="all", pool="atom", features="equivariant",
                           layers=[0, -1])
    for f in range(2):
        for r in range(3):
            distance = np.linalg.norm(pos[f][:, None] - pos[f][None, residue == r], axis=-1)
            members = np.flatnonzero(distance.min(axis=1) < cutoff)
            by_hand = atoms.transform((pos[f : f + 1, members], z[members]))[0]
            np.testing.assert_allclose(local[f, r], by_hand[residue[members] == r].mean(0),
                                       atol=1e-5)


def test_local_tokens_differ_from_residue_tokens_only_where_atoms_are_out_of_reach(traj,
                                                                                 weights_url):
    options = dict(model="tensornet-denali", select="all", features="invariant", layers="all")
    whole = GeomFeaturizer(pool="residue", **options).transform(traj)
    local = GeomFeaturizer(pool="residue-local", **options).transform(traj)
    assert local.shape == whole.shape == (4, 3, 3 * 2 * H)
    difference = np.abs(local - whole).max(axis=(0, 2))
    # ACE and NME have atoms beyond 5 Å of each other; every atom is within 5 Å of ALA
    assert difference[0] > 0.1 and difference[2] > 0.1
    assert difference[1] <= 1e-5


def test_local_tokens_of_a_one_residue_molecule_are_its_residue_tokens(traj, weights_url):
    alanine = traj.atom_slice(traj.topology.select("resname ALA"))
    options = dict(select="all", features="invariant", layers="all", reduce="mean")
    local = GeomFeaturizer(pool="residue-local", **options).transform(alanine)
    np.testing.assert_array_equal(local, GeomFeaturizer(pool="residue", **options).transform(
        alanine))


def test_local_tokens_are_rotation_invariant_and_need_residues(traj, weights_url):
    pos = traj.xyz[:2].astype(np.float64) * 10.0
    z = np.array([a.element.atomic_number for a in traj.topology.atoms])
    residue = np.array([a.residue.index for a in traj.topology.atoms])
    moved = pos @ random_rotation(5).T + np.array([1.0, 2.0, -30.0])
    featurizer = GeomFeaturizer("tensornet-denali", select="all", pool="residue-local",
                                features="invariant")
    np.testing.assert_allclose(featurizer.transform((moved, z, residue)),
                               featurizer.transform((pos, z, residue)), atol=1e-4)
    with pytest.raises(InputError, match=r"pool='residue-local' needs residues"):
        featurizer.transform((pos, z))


def test_local_graphs_size_the_automatic_batches(traj, weights_url):
    whole, local = GeomFeaturizer(pool="residue"), GeomFeaturizer(pool="residue-local")
    frames = range(len(traj))
    # heavy atoms of ala2 are one neighbourhood at 7.5 Å: three local graphs of 100 edges
    assert whole.resolve_batch_size(whole.reader(traj), frames) == whole.auto_batch_size(100)
    assert local.resolve_batch_size(local.reader(traj), frames) == local.auto_batch_size(300)


def test_local_tokens_use_minimum_images(traj, weights_url):
    """A molecule split across a triclinic box gives the tokens of the whole molecule."""
    box = np.array([[20.0, 0.0, 0.0], [6.0, 19.0, 0.0], [-5.0, 4.0, 19.5]])
    pos = traj.xyz[:2].astype(np.float64) * 10.0
    z = np.array([a.element.atomic_number for a in traj.topology.atoms])
    residue = np.array([a.residue.index for a in traj.topology.atoms])
    moved = pos - pos.mean(1, keepdims=True) + box.sum(0)  # the far corner: every face cuts
    frac = moved @ np.linalg.inv(box)
    split = (frac - np.floor(frac)) @ box
    assert np.ptp(split - pos, axis=1).max() > 10.0  # really split
    featurizer = GeomFeaturizer("tensornet-denali", select="all", pool="residue-local",
                                features="equivariant", layers=[0, -1], dtype="float64")
    np.testing.assert_allclose(featurizer.transform(Frames(split, z, residue, boxes=box)),
                               featurizer.transform(Frames(pos, z, residue)), atol=1e-5)
