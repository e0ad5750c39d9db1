"""geomfeat.evaluate and ``geomfeat compare``: the protocol's guarantees on tiny synthetic data.

- lag times with units become frames with the trajectory's time step, or a clear error;
- the split deals disjoint pieces and time-lagged pairs never cross a piece;
- the test part is never seen by training or by model choice (poisoning it changes nothing
  but the test score);
- feature-set specs, paired statistics, report files and one-line CLI errors.
"""

from __future__ import annotations

import json

import mdtraj as md
import numpy as np
import pytest
from conftest import EXAMPLE

from geomfeat.cli import main
from geomfeat.errors import GeomfeatError
from geomfeat.evaluate import VAMPNetRecipe, compare, make_split, parse_lag, parse_lags
from geomfeat.evaluate.features import FeatureSet, load_trajectories, parse_spec
from geomfeat.evaluate.lags import timestep_ps
from geomfeat.evaluate.protocol import score_feature_set
from geomfeat.evaluate.splits import PARTS, pieces_of, standardizer
from geomfeat.evaluate.stats import paired, summary
from geomfeat.evaluate.vampnet import pairs_of, train_vampnet

TINY = VAMPNetRecipe(budget=300, batch_size=64, steps_per_epoch=4, max_epochs=3, patience=2,
                     restarts=2)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def two_state(n: int = 400, n_trajs: int = 3, dim: int = 6, seed: int = 0) -> list[np.ndarray]:
    """(T, dim) float32 frames of a slow two-state process (channel 0) in noise."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_trajs):
        state = np.cumsum(rng.random(n) < 0.03) % 2
        x = rng.normal(size=(n, dim)).astype(np.float32)
        x[:, 0] += 2.0 * state
        out.append(x)
    return out


# ----------------------------------------------------------------------------- lag times

@pytest.mark.parametrize(("text", "dt", "frames"), [
    ("20ps", 10.0, 2), ("0.1ns", 10.0, 10), ("500fs", 0.5, 1), ("1us", 1000.0, 1000),
    ("5", None, 5), (7, 2.0, 7), ("20 ps", 10.0, 2), ("0.02ns", 20.0, 1)])
def test_lag_units_become_frames_with_the_time_step(text, dt, frames):
    lag = parse_lag(text, dt)
    assert int(lag) == frames and isinstance(lag, int)
    assert lag.ps == (None if dt is None else pytest.approx(frames * dt))


@pytest.mark.parametrize(("text", "dt", "message"), [
    ("15ps", 10.0, "not a whole number of frames"),
    ("20ps", None, "does not record its time step"),
    ("2xs", 1.0, "unknown unit"),
    ("1ps", 10.0, "not a whole number"),
    ("0", 1.0, "positive integer"),
    ("1.5", 1.0, "positive integer"),
    ("ps", 1.0, "expected a number"),
])
def test_bad_lags_are_named_errors(text, dt, message):
    with pytest.raises(GeomfeatError, match=message):
        parse_lag(text, dt)


def test_repeated_lags_are_an_error():
    with pytest.raises(GeomfeatError, match="repeat"):
        parse_lags(["10ps", "1"], 10.0)


def test_timestep_from_frame_times():
    assert timestep_ps(np.arange(5) * 2.0 + 1.0) == 2.0
    assert timestep_ps(np.array([0.0])) is None
    assert timestep_ps(np.zeros(4)) is None
    assert timestep_ps(np.array([0.0, 1.0, 3.0])) is None  # not constant


def test_trajectory_time_step_includes_the_stride():
    data = load_trajectories(EXAMPLE / "ala2.pdb", [EXAMPLE / "ala2.xtc"], stride=5)
    assert data.dt_ps == pytest.approx(5.0) and data.lengths == [400]
    given = load_trajectories(EXAMPLE / "ala2.pdb", [EXAMPLE / "ala2.xtc"], stride=5,
                              timestep=2.0)
    assert given.dt_ps == pytest.approx(10.0)


# ----------------------------------------------------------------------------- splits

@pytest.mark.parametrize("by", ["block", "trajectory"])
def test_split_deals_disjoint_pieces_that_cover_the_frames(by):
    lengths = [100, 57, 80, 33]
    sp = make_split(lengths, by=by, n_blocks=5, seed=3)
    seen = np.zeros(sum(lengths), int)
    offsets = np.cumsum([0, *lengths])
    for part in PARTS:
        assert sp.part(part), part
        for i, a, b in sp.part(part):
            seen[offsets[i] + a: offsets[i] + b] += 1
    assert (seen == 1).all()
    assert sp.as_dict()["frames"]["test"] == sp.frames("test") > 0
    assert make_split(lengths, by=by, n_blocks=5, seed=3) == sp  # the seed fixes the deal


def test_split_needs_three_pieces_longer_than_the_lag():
    with pytest.raises(GeomfeatError, match=r"at least three pieces.*of 50 frames"):
        make_split([50], n_blocks=2)
    with pytest.raises(GeomfeatError, match="three trajectories"):
        make_split([50, 50], by="trajectory")
    with pytest.raises(GeomfeatError, match=r"of >= 30 frames.*got 2"):
        make_split([70], n_blocks=5, min_length=30)  # two blocks of 35: not three


def test_blocks_are_never_cut_shorter_than_the_longest_lag():
    """Too many blocks asked for: fewer blocks, each holding pairs, not blocks dropped."""
    sp = make_split([100], n_blocks=5, min_length=30)
    pieces = sorted(sp.train + sp.validation + sp.test)
    assert pieces == [(0, 0, 33), (0, 33, 67), (0, 67, 100)] and not sp.left_out


def test_time_lagged_pairs_never_cross_a_block_trajectory_or_part():
    lengths = [90, 61, 75]
    frames = [np.stack([np.full(n, i), np.arange(n)], 1).astype(np.float32)
              for i, n in enumerate(lengths)]
    sp = make_split(lengths, n_blocks=4, seed=1)
    lag = 3
    for part in PARTS:
        pieces = sp.part(part)
        x0, xt = pairs_of(pieces_of(frames, pieces), lag)
        assert (x0[:, 0] == xt[:, 0]).all()  # same trajectory
        assert (xt[:, 1] - x0[:, 1] == lag).all()
        inside = [any(i == t and a <= f0 and f0 + lag < b for i, a, b in pieces)
                  for t, f0 in x0.numpy().astype(int)]
        assert all(inside)  # both ends inside one piece of this part
        assert len(x0) == sum(max(b - a - lag, 0) for _, a, b in pieces)


def test_standardizer_uses_the_given_frames_only():
    train = [np.array([[0.0, 5.0], [2.0, 5.0]])]
    mean, sd = standardizer(train)
    np.testing.assert_allclose(mean, [1.0, 5.0])
    np.testing.assert_allclose(sd, [1.0, 1.0])  # constant feature: sd 1


# ----------------------------------------------------------------------------- test isolation

def test_poisoned_test_part_changes_neither_training_nor_model_choice():
    data = two_state()
    sp = make_split([len(x) for x in data], n_blocks=5, seed=0)
    poisoned = [x.copy() for x in data]
    for i, a, b in sp.test:
        poisoned[i][a:b] = 1e6 * np.random.default_rng(i).normal(size=(b - a, 6))
    fs = FeatureSet("x", data, "clean")
    bad = FeatureSet("x", poisoned, "poisoned")
    clean_scores, clean_out = score_feature_set(fs, sp, [2], dims=[1, 2], recipe=TINY, seed=0)
    bad_scores, bad_out = score_feature_set(bad, sp, [2], dims=[1, 2], recipe=TINY, seed=0)
    c, p = clean_scores["2"]["vampnet"], bad_scores["2"]["vampnet"]
    assert c["restart"] == p["restart"] and c["val_vamp2"] == p["val_vamp2"]
    for rc, rp in zip(c["runs"], p["runs"], strict=True):
        assert rc["val_curve"] == rp["val_curve"] and rc["train_curve"] == rp["train_curve"]
        assert rc["best_epoch"] == rp["best_epoch"]
    # the chosen lobes are the same function: equal outputs on the training frames
    for i, a, b in sp.train:
        np.testing.assert_array_equal(clean_out["2"]["vampnet"][i][a:b],
                                      bad_out["2"]["vampnet"][i][a:b])
    # ... and the test score is what the poison changed
    assert c["vamp2"] != p["vamp2"]
    assert clean_scores["2"]["linear"] != bad_scores["2"]["linear"]


def test_restarts_are_chosen_by_validation_score():
    data = two_state()
    sp = make_split([len(x) for x in data], n_blocks=5, seed=0)
    z = pieces_of(data, sp.train), pieces_of(data, sp.validation)
    net = train_vampnet(*z, 2, TINY, seed=0)
    scores = [r["val_vamp2"] for r in net["runs"]]
    assert net["restart"] == int(np.argmax(scores)) and net["val_vamp2"] == max(scores)
    for r in net["runs"]:
        assert r["val_vamp2"] == pytest.approx(max(r["val_curve"]), abs=1e-5)
        assert len(r["val_curve"]) == r["epochs"] <= TINY.max_epochs


# ----------------------------------------------------------------------------- specs, stats

def test_spec_strings():
    assert parse_spec("visnet-denali") == [{"kind": "embedding", "model": "visnet-denali",
                                            "pool": "graph", "features": "scalar",
                                            "layers": "last"}]
    assert parse_spec("et-denali:residue:invariant:0,-1")[0]["layers"] == [0, -1]
    assert [p["kind"] for p in parse_spec("distances+torsions+npy:a.npy")] == [
        "distances", "torsions", "npy"]
    assert parse_spec("heavy-distances")[0]["kind"] == "distances"
    for bad, msg in [("foo", "not an encoder"),
                     ("visnet-denali:atom", "graph, residue or residue-local"),
                     ("visnet-denali:graph:equivariant", "scalar or invariant"),
                     ("visnet-denali:graph:scalar:x", "layers must be"), ("npy:", "needs a path")]:
        with pytest.raises(GeomfeatError, match=msg):
            parse_spec(bad)


def test_paired_statistics():
    p = paired([1.2, 1.4, 1.3], [1.0, 1.1, 1.2])
    assert p["diff"]["mean"] == pytest.approx(0.2) and p["wins"] == 3 and p["n"] == 3
    assert p["ratio"] == pytest.approx(3.9 / 3.3)
    assert 0 < p["t_p"] < 0.1 and p["sign_p"] == pytest.approx(0.25)
    assert summary([1.0, 3.0]) == {"mean": 2.0, "sd": pytest.approx(np.sqrt(2)), "n": 2,
                                   "values": [1.0, 3.0]}


# ----------------------------------------------------------------------------- end to end

def _user_arrays(tmp_path, stride=1):
    t = md.load(str(EXAMPLE / "ala2.xtc"), top=str(EXAMPLE / "ala2.pdb"))
    phi = md.compute_phi(t)[1][:, 0]
    path = tmp_path / "ala2_phi.npy"
    np.save(path, np.stack([np.sin(phi), np.cos(phi)], 1).astype(np.float32))
    return path


def test_compare_writes_every_report_file(tmp_path):
    arr = _user_arrays(tmp_path)
    result = compare(EXAMPLE / "ala2.pdb", [EXAMPLE / "ala2.xtc"], ["10ps", "20ps"],
                     features=["torsions", f"npy:{arr}", "torsions+distances"],
                     stride=10, n_blocks=8, seeds=[0, 1], recipe=TINY, out=tmp_path / "r",
                     name="ala2", log=None, cache=tmp_path / "cache")
    files = sorted(p.name for p in (tmp_path / "r").iterdir())
    assert files == ["ala2.json", "ala2.md", "ala2_fes.png", "ala2_its.png", "ala2_scores.png",
                     "ala2_training.png"]
    report = json.loads((tmp_path / "r" / "ala2.json").read_text())
    assert [d["frames"] for d in report["lags"]] == [1, 2]
    assert report["settings"]["recipe"] == TINY.as_dict()
    assert list(report["scores"]) == ["torsions", f"npy:{arr}", "torsions+distances",
                                      "distances"]
    assert report["feature_sets"]["torsions+distances"]["frame_shape"] == [49]
    s = report["scores"]["torsions"]["1"]
    assert len(s["vampnet"]["per_seed"]) == 2 and set(s["linear"]["summary"]) == {
        "1", "2", "3", "4"}
    assert set(report["comparison"]) == {"torsions", f"npy:{arr}", "torsions+distances"}
    md_text = (tmp_path / "r" / "ala2.md").read_text()
    assert "Paired comparison with `distances`" in md_text and "| `torsions` |" in md_text
    # φ alone (user arrays) and φ/ψ torsions tell the same slow story on the test part
    assert result.score(f"npy:{arr}", "10ps", "linear")["n"] == 2


@pytest.mark.parametrize(("args", "message"), [
    (["--lag", "15ps"], "15 ps is not a whole number of frames of 10 ps"),
    (["--lag", "10ps", "--features", "nope"], "'nope': not an encoder"),
    (["--lag", "10ps", "--features", "ca-distances"], "fewer than two Cα atoms"),
    (["--lag", "10ps", "--features", "torsions", "torsions"], "repeats a feature set"),
    (["--lag", "10ps", "--n-blocks", "1"], "at least three pieces"),
])
def test_compare_cli_errors_are_one_line(args, message, tmp_path, capsys):
    status = main(["compare", str(EXAMPLE / "ala2.pdb"), str(EXAMPLE / "ala2.xtc"),
                   "--stride", "10", "-o", str(tmp_path / "out"), "-q", "--no-vampnet",
                   "--reference", "none", *args])
    err = capsys.readouterr().err.strip()
    assert status == 1
    assert err.startswith("geomfeat: error: ") and "\n" not in err and message in err, err


def test_compare_cli_missing_file_and_units_without_time_step(tmp_path, capsys):
    assert main(["compare", str(EXAMPLE / "ala2.pdb"), str(tmp_path / "missing.xtc"),
                 "--lag", "2", "-o", str(tmp_path / "o")]) == 1
    assert "no such file" in capsys.readouterr().err
    # a multi-frame PDB records no times: frames work, units are refused
    t = md.load(str(EXAMPLE / "ala2.xtc"), top=str(EXAMPLE / "ala2.pdb"))[:60]
    t.time = np.zeros(t.n_frames)
    pdb = tmp_path / "frames.pdb"
    t.save_pdb(str(pdb))
    assert main(["compare", str(EXAMPLE / "ala2.pdb"), str(pdb), "--lag", "2ps", "-q",
                 "-o", str(tmp_path / "o"), "--features", "torsions", "--reference", "none",
                 "--no-vampnet", "--n-blocks", "3"]) == 1
    err = capsys.readouterr().err
    assert "does not record its time step" in err and "--timestep" in err


def test_compare_cli_runs_and_reports(tmp_path, capsys):
    status = main(["compare", str(EXAMPLE / "ala2.pdb"), str(EXAMPLE / "ala2.xtc"),
                   "--stride", "10", "--lag", "10ps", "-o", str(tmp_path / "out"),
                   "--features", "torsions", "--seeds", "0", "--n-blocks", "6",
                   "--budget", "300", "--steps-per-epoch", "3", "--max-epochs", "2",
                   "--restarts", "1", "--batch-size", "64", "-q"])
    assert status == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert report["settings"]["recipe"]["restarts"] == 1
    assert report["settings"]["features"] == ["torsions", "distances"]


# ----------------------------------------------------------------------------- readouts

@pytest.mark.parametrize("spec", ["visnet-denali:graph:invariant:last",
                                  "visnet-denali:residue:scalar:last",
                                  "visnet-denali:graph:scalar:all",
                                  "visnet-denali:residue:invariant:0,-1",
                                  "visnet-denali:residue-local:invariant:all"])
def test_readouts_from_one_pass_equal_the_featurizer(spec, weights_url, tmp_path):
    """Every readout derived from the cached per-atom pass equals GeomFeaturizer's own."""
    from geomfeat import GeomFeaturizer
    from geomfeat.evaluate.features import build_feature_sets

    _, pool, features, layers = spec.split(":")
    data = load_trajectories(EXAMPLE / "ala2.pdb", [EXAMPLE / "ala2.xtc"], stride=200)
    sets, _ = build_feature_sets([spec], data, cache=tmp_path)
    kwargs = {} if layers == "last" else {
        "layers": "all" if layers == "all" else [int(i) for i in layers.split(",")]}
    expected = GeomFeaturizer("visnet-denali", pool=pool, features=features, **kwargs
                              ).transform(data.trajs[0])
    np.testing.assert_allclose(sets[spec].data[0], expected, rtol=1e-6, atol=1e-5)
    again, _ = build_feature_sets([spec], data, cache=tmp_path)  # from the cache
    np.testing.assert_array_equal(again[spec].data[0], sets[spec].data[0])
