"""Feature selection (``geomfeat.evaluate.select_features``, ``compare --select-features``).

- the choice is made on validation only: corrupting the test frames changes no choice;
- a seed fixes the choice; the test part is dealt once and shared by every seed;
- the dimension budget holds on a protein-sized topology without building its features;
- PCA with a validation-chosen dimension keeps a high-dimensional family from collapsing;
- the report, the feature files and the command line.
"""

from __future__ import annotations

import json

import mdtraj as md
import numpy as np
import pytest
from conftest import EXAMPLE

from geomfeat.cli import main
from geomfeat.errors import GeomfeatError
from geomfeat.evaluate import select_features
from geomfeat.evaluate.families import default_families, family_dims, memory_estimate
from geomfeat.evaluate.features import Trajectories, build_feature_sets, parse_spec
from geomfeat.evaluate.reduce import fit_reduction
from geomfeat.evaluate.reduce import validation_vamp2 as heldout_vamp2
from geomfeat.evaluate.select import Selector, improves, inner_splits
from geomfeat.evaluate.splits import make_split, pieces_of, standardizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def slow_states(n: int, n_trajs: int, rng, rate: float = 0.03) -> list[np.ndarray]:
    """Two-state telegraph processes (0/1), one per trajectory."""
    return [(np.cumsum(rng.random(n) < rate) % 2).astype(float) for _ in range(n_trajs)]


def families_data(n: int = 300, n_trajs: int = 4, seed: int = 0) -> dict[str, list[np.ndarray]]:
    """Three families: ``a`` sees slow process 1, ``b`` slow process 2, ``noise`` neither."""
    rng = np.random.default_rng(seed)
    s1, s2 = slow_states(n, n_trajs, rng), slow_states(n, n_trajs, rng, 0.05)
    out = {}
    for name, states in (("a", s1), ("b", s2), ("noise", [np.zeros(n)] * n_trajs)):
        out[name] = [(2.0 * s[:, None] * rng.normal(size=3) + rng.normal(size=(n, 3)))
                     .astype(np.float32) for s in states]
    return out


def splits_for(data, seeds=(0, 1, 2), lag=2):
    lengths = [len(x) for x in next(iter(data.values()))]
    outer = make_split(lengths, n_blocks=5, seed=0, min_length=lag + 1)
    return inner_splits(outer, seeds)


# ----------------------------------------------------------------------------- splits

def test_inner_splits_share_one_test_part_and_redeal_the_rest():
    outer = make_split([200, 200, 200], n_blocks=5, seed=4)
    inner = inner_splits(outer, [0, 1, 2])
    pool = sorted(outer.train + outer.validation)
    for sp in inner:
        assert sp.test == outer.test
        assert sorted(sp.train + sp.validation) == pool
        assert not set(sp.train) & set(sp.validation)
        assert len(sp.validation) == len(outer.validation)  # 20 % of all pieces
    assert len({tuple(sp.validation) for sp in inner}) > 1  # the seeds re-deal


def test_improvement_must_exceed_its_seed_spread():
    assert improves([2.0, 2.1, 2.2], [1.0, 1.0, 1.0])["accepted"]
    noisy = improves([1.5, 0.9, 1.2], [1.0, 1.0, 1.0])  # mean 0.2, sd 0.3
    assert not noisy["accepted"] and noisy["threshold"] == pytest.approx(0.3)
    assert improves([1.5, 0.9, 1.2], [1.0, 1.0, 1.0], noise=0.5)["accepted"]
    assert not improves([1.0, 1.0], [1.0, 1.0])["accepted"]  # no gain is no gain


# ----------------------------------------------------------------------------- selection

def test_forward_selection_adds_the_second_slow_process_and_not_the_noise():
    data = families_data()
    sel = Selector(data, splits_for(data), 2)
    record = sel.forward()
    assert sorted(record["chosen"]) == ["a", "b"]
    assert record["steps"][-1]["accepted"] is False  # + noise did not help
    assert record["runner_up"] not in (None, record["name"])
    assert max(sel.dims(record["chosen"])) <= record["max_reduced_dims"]


def test_selection_never_reads_the_test_part():
    """NaN in every test frame: the same choice, the same validation scores; only the test
    stage (which reads the test part) sees the NaN."""
    data = families_data()
    splits = splits_for(data)
    poisoned = {n: [x.copy() for x in arrays] for n, arrays in data.items()}
    for arrays in poisoned.values():
        for i, a, b in splits[0].test:
            arrays[i][a:b] = np.nan
    clean, bad = Selector(data, splits, 2), Selector(poisoned, splits, 2)
    rc, rb = clean.forward(), bad.forward()
    assert rc == rb
    for n in data:
        assert [r.dim for r in clean.reductions[n]] == [r.dim for r in bad.reductions[n]]
    assert np.isfinite(clean.test_stage(rc)["scores"][rc["name"]]["mean"])
    with pytest.raises(ValueError, match="non-finite"):
        bad.test_stage(rb)


def test_selection_is_deterministic_for_a_seed():
    data = families_data(seed=3)
    first = Selector(data, splits_for(data), 2).forward()
    again = Selector(data, splits_for(data), 2).forward()
    assert first == again
    other = Selector(data, splits_for(data, seeds=(5, 6, 7)), 2).forward()
    assert other["validation"] != first["validation"]  # other seeds, other deals


def test_max_set_and_max_dim_bound_the_chosen_set():
    data = families_data()
    record = Selector(data, splits_for(data), 2).forward(max_set=1)
    assert len(record["chosen"]) == 1 and len(record["steps"]) == 1
    small = Selector(data, splits_for(data), 2, max_dim=2)
    assert all(r.dim <= 2 for reds in small.reductions.values() for r in reds)


# ----------------------------------------------------------------------------- high dimensions

def test_fast_covariances_give_deeptimes_vamp2():
    """The selection's covariances (two matrix products) score as deeptime's own VAMP fit."""
    from geomfeat.evaluate.linear import vamp_scores

    rng = np.random.default_rng(2)
    train = [rng.normal(size=(300, 5)).cumsum(0) for _ in range(3)]
    val = [rng.normal(size=(200, 5)).cumsum(0) for _ in range(2)]
    assert heldout_vamp2(train, val, 3, 2) == pytest.approx(
        vamp_scores(train, val, 3, [2])["2"], rel=1e-9)


def test_pca_with_a_held_out_dimension_choice_keeps_many_noise_dims_from_collapsing():
    """2 slow processes spread over 600 dimensions, 600 noise dimensions, 720 training frames:
    linear VAMP of all of them scores about 1 on test (it fits noise); reduced, it does not."""
    rng = np.random.default_rng(1)
    n, n_trajs, d = 300, 4, 600
    s1, s2 = slow_states(n, n_trajs, rng, 0.02), slow_states(n, n_trajs, rng, 0.03)
    w1, w2 = rng.normal(size=d) * 0.4, rng.normal(size=d) * 0.4
    x = [(a[:, None] * w1 + b[:, None] * w2 + rng.normal(size=(n, d))).astype(np.float32)
         for a, b in zip(s1, s2, strict=True)]
    x = [np.concatenate([xi, rng.normal(size=(n, d)).astype(np.float32)], 1) for xi in x]
    sp = make_split([n] * n_trajs, n_blocks=5, seed=0)
    train, val, test = (pieces_of(x, sp.part(p)) for p in ("train", "validation", "test"))
    mean, sd = standardizer(train)
    raw = heldout_vamp2([(t - mean) / sd for t in train], [(t - mean) / sd for t in test], 5, 4)
    red = fit_reduction(train, val, 5, k=4)
    reduced = heldout_vamp2([red.transform(t) for t in train], [red.transform(t) for t in test],
                         5, 4)
    assert raw < 1.25, raw  # collapsed: almost no kinetic information left
    assert reduced > 1.6, reduced
    assert red.dim <= sp.frames("train") // 10 and str(red.dim) in red.val_scores


# ----------------------------------------------------------------------------- large systems

def big_topology(n_res: int = 300):
    """A protein-sized topology: ``n_res`` residues of 10 heavy atoms (3,000 heavy atoms)."""
    top = md.Topology()
    chain = top.add_chain()
    c, n = md.element.carbon, md.element.nitrogen
    names = [("N", n), ("CA", c), ("C", c), ("O", md.element.oxygen), ("CB", c), ("CG", c),
             ("CD", c), ("NE", n), ("CZ", c), ("NH1", n)]
    for i in range(n_res):
        res = top.add_residue("ARG", chain, resSeq=i + 1)
        for name, el in names:
            top.add_atom(name, el, res)
    return top


def test_every_default_family_fits_the_budget_on_a_protein_sized_topology():
    top = big_topology()
    fams, left_out = default_families(top, 10_000, models=["visnet-denali"], max_dims=20_000)
    by_spec = {f.spec: f for f in fams}
    assert "distances" not in by_spec and "distances:20000" in by_spec  # 4.5 M pairs
    assert by_spec["distances:20000"].note.startswith("all 4498500 pairs exceed")
    assert "ca-distances:20000" in by_spec and "contacts:20000" in by_spec
    assert by_spec["visnet-denali:residue:scalar:last"].dims == 300 * 64
    assert by_spec["backbone-torsions"].dims == 2 * 2 * 299
    assert [d["spec"] for d in left_out] == ["visnet-denali:residue:scalar:all"]
    for f in fams:
        assert f.dims <= 20_000
        assert f.memory < 3 * 2 ** 30, (f.spec, f.memory)  # 10 000 frames: < 3 GiB each
    assert memory_estimate(4_498_500, 10_000) > 100 * 2 ** 30  # all pairs would not fit


def test_subsampled_pair_families_are_built_at_their_budget():
    top = big_topology(60)
    xyz = np.random.default_rng(0).normal(scale=3.0, size=(3, top.n_atoms, 3))
    traj = md.Trajectory(xyz.astype(np.float32), top)
    data = Trajectories("big.pdb", ["big.xtc"], 1, [traj], 1.0, "given")
    specs = ["distances:500", "ca-distances:100", "contacts:50"]
    sets, _ = build_feature_sets(specs, data)
    for spec in specs:
        assert sets[spec].frame_shape == (family_dims(spec, top),) == (int(spec.split(":")[1]),)
    ca = traj.topology.select("name CA")
    pairs = np.stack(np.triu_indices(len(ca), 1), 1)
    first = pairs[0]
    np.testing.assert_allclose(sets["ca-distances:100"].data[0][:, 0],
                               md.compute_distances(traj, [ca[first]])[:, 0], rtol=1e-6)
    with pytest.raises(GeomfeatError, match="number of pairs"):
        parse_spec("distances:0")


# ----------------------------------------------------------------------------- end to end

def _write_angles(folder, shuffle_test=None) -> list[str]:
    """sin/cos of Ala2's φ and ψ as two ``npy:`` families; test frames shuffled if asked."""
    t = md.load(str(EXAMPLE / "ala2.xtc"), top=str(EXAMPLE / "ala2.pdb"))
    specs = []
    for name, ang in (("phi", md.compute_phi(t)[1][:, 0]), ("psi", md.compute_psi(t)[1][:, 0])):
        a = np.stack([np.sin(ang), np.cos(ang)], 1).astype(np.float32)
        if shuffle_test is not None:
            rng = np.random.default_rng(0)
            for _, lo, hi in shuffle_test.test:
                a[lo:hi] = a[lo:hi][rng.permutation(hi - lo)]
        np.save(folder / f"{name}.npy", a)
        specs.append(f"npy:{folder / name}.npy")
    return specs


def test_select_features_writes_report_and_features(tmp_path):
    extra = _write_angles(tmp_path)
    r = select_features(EXAMPLE / "ala2.pdb", EXAMPLE / "ala2.xtc", "10ps",
                        families=["distances"], extra=extra, n_blocks=8, seeds=[0, 1],
                        log=None, cache=tmp_path, out=tmp_path / "out")
    report = json.loads((tmp_path / "out" / "select.json").read_text())
    assert report["selection"]["name"] == r.chosen
    assert set(report["test"]["scores"]) >= {"distances", *extra}
    assert report["families"]["distances"]["memory_mb"] >= 0
    saved = np.load(tmp_path / "out" / "select_features" / "ala2.npy")
    assert saved.shape == (2000, report["final_features"]["dims"]) and saved.dtype == np.float32
    text = (tmp_path / "out" / "select.md").read_text()
    assert f"**Chosen: `{r.chosen}`**" in text and "## Cost per family" in text


def test_shuffled_test_frames_change_no_choice_end_to_end(tmp_path):
    """The same ``npy:`` files, their test frames shuffled in time: same steps, same
    validation scores, same choice; only the test scores move."""
    kw = dict(families=["distances"], n_blocks=8, seeds=[0, 1], log=None, cache=tmp_path)
    extra = _write_angles(tmp_path)
    clean = select_features(EXAMPLE / "ala2.pdb", EXAMPLE / "ala2.xtc", "10ps", extra=extra,
                            **kw)
    outer = make_split([2000], n_blocks=8, seed=0, min_length=11)
    assert _write_angles(tmp_path, shuffle_test=outer) == extra  # same files, overwritten
    bad = select_features(EXAMPLE / "ala2.pdb", EXAMPLE / "ala2.xtc", "10ps", extra=extra,
                          **kw)
    assert bad.report["selection"] == clean.report["selection"]
    assert bad.report["test"]["scores"] != clean.report["test"]["scores"]


def test_budget_subsamples_a_given_pair_family(tmp_path):
    r = select_features(EXAMPLE / "ala2.pdb", EXAMPLE / "ala2.xtc", "10ps",
                        families=["distances", "torsions"], max_dims=20, n_blocks=8,
                        seeds=[0, 1], log=None, cache=tmp_path)
    fams = r.report["families"]
    assert set(fams) == {"distances:20", "torsions"} and fams["distances:20"]["dims"] == 20


def test_cli_select_features_runs_with_vampnet_finalists(tmp_path, capsys):
    status = main(["compare", str(EXAMPLE / "ala2.pdb"), str(EXAMPLE / "ala2.xtc"),
                   "--lag", "10ps", "-o", str(tmp_path / "o"), "--select-features",
                   "--families", "distances", "torsions", "--seeds", "0", "1",
                   "--n-blocks", "8", "--budget", "300", "--steps-per-epoch", "3",
                   "--max-epochs", "2", "--restarts", "1", "--batch-size", "64", "-q"])
    assert status == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "o" / "select.json").read_text())
    assert report["vampnet_stage"]["finalists"][0] in ("distances", "torsions",
                                                       "torsions+distances",
                                                       "distances+torsions")
    assert report["command"].startswith("geomfeat compare")
    assert (tmp_path / "o" / "select_features" / "ala2.npy").is_file()


def test_cli_select_features_takes_one_lag(tmp_path, capsys):
    status = main(["compare", str(EXAMPLE / "ala2.pdb"), str(EXAMPLE / "ala2.xtc"),
                   "--lag", "10ps", "20ps", "-o", str(tmp_path / "o"), "--select-features",
                   "--families", "torsions", "-q"])
    err = capsys.readouterr().err.strip()
    assert status == 1 and "\n" not in err and "one lag time" in err
