"""``geomfeat compare`` keeps its promises about its data (issue 19).

- every seed is one paired sample: repeated seeds are refused;
- a readout cache entry that does not match its request is recomputed, with a warning naming it;
- no trajectory is dropped silently: short ones are kept as whole pieces where they hold
  pairs, the others are listed (log and report) with the reason, and every part's frames and
  trajectories are reported;
- bad input fails in one line, before any expensive work;
- the command shows its progress and every default.
"""

from __future__ import annotations

import argparse
import json

import mdtraj as md
import numpy as np
import pytest
import torch
from conftest import EXAMPLE

from geomfeat.cli import build_parser, main
from geomfeat.evaluate import VAMPNetRecipe, compare
from geomfeat.evaluate.features import build_feature_sets, load_trajectories

TINY = VAMPNetRecipe(budget=300, batch_size=64, steps_per_epoch=3, max_epochs=2, patience=2,
                     restarts=1)
ALA2 = [str(EXAMPLE / "ala2.pdb"), str(EXAMPLE / "ala2.xtc")]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cli(tmp_path, *args: str) -> list[str]:
    """A fast ``compare`` command line on the bundled Ala2 (200 frames, 10 ps apart)."""
    return ["compare", *ALA2, "--stride", "10", "-o", str(tmp_path / "out"), "--no-vampnet",
            "--reference", "none", *args]


def _one_line_error(capsys, status: int) -> str:
    err = capsys.readouterr().err.strip()
    assert status == 1, err
    assert err.startswith("geomfeat: error: ") and "\n" not in err, err
    return err


# ----------------------------------------------------------------------------- item 4: seeds

def test_repeated_seeds_are_refused(tmp_path, capsys):
    """``--seeds 0 0 1`` would count seed 0 twice in mean ± sd and in the paired tests."""
    status = main(_cli(tmp_path, "--lag", "10ps", "--features", "torsions", "--seeds", "0",
                       "0", "1", "-q"))
    err = _one_line_error(capsys, status)
    assert "repeat seed 0" in err
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- item 5: cache

def _ala2_10_frames():
    return load_trajectories(EXAMPLE / "ala2.pdb", [EXAMPLE / "ala2.xtc"], stride=200)


SPEC = "visnet-denali:graph:scalar:last"


def test_a_cut_cache_entry_is_recomputed_with_a_warning(weights_url, tmp_path):
    """An entry cut to 5 of 10 rows is named, recomputed and rewritten, never used."""
    data = _ala2_10_frames()
    first, _ = build_feature_sets([SPEC], data, cache=tmp_path)
    entries = sorted(tmp_path.glob("*_graph_scalar.npy"))
    assert len(entries) == 1
    np.save(entries[0], np.load(entries[0])[:5])  # cut to 5 of 10 rows
    with pytest.warns(UserWarning, match=f"{entries[0].name}.*recomputing"):
        again, info = build_feature_sets([SPEC], data, cache=tmp_path)
    assert again[SPEC].data[0].shape == first[SPEC].data[0].shape == (10, 64)
    np.testing.assert_array_equal(again[SPEC].data[0], first[SPEC].data[0])
    assert np.load(entries[0]).shape[0] == 10  # rewritten
    assert info["visnet-denali"]["recomputed_cache_entries"] == [str(entries[0])]


@pytest.mark.parametrize(("damage", "message"), [
    (lambda f: np.save(f, np.zeros((10, 6, 32), np.float32)),
     r"holds \(10, 6, 32\) float32, the request is \(10, 6, 64\) float32"),
    (lambda f: np.save(f, np.full((10, 6, 64), np.nan, np.float32)), "non-finite"),
    (lambda f: f.write_bytes(b"not an array"), "not a readable .npy"),
], ids=["another readout", "nan", "not npy"])
def test_a_damaged_cache_entry_is_recomputed(damage, message, weights_url, tmp_path):
    """Right name, wrong content (another encoder's channels, NaN, garbage): recomputed."""
    data = _ala2_10_frames()
    first, _ = build_feature_sets([SPEC], data, cache=tmp_path)
    damage(next(tmp_path.glob("*_graph_scalar.npy")))
    with pytest.warns(UserWarning, match=message):
        again, _ = build_feature_sets([SPEC], data, cache=tmp_path)
    np.testing.assert_array_equal(again[SPEC].data[0], first[SPEC].data[0])


def test_the_readout_cache_honours_geomfeat_cache(weights_url, tmp_path, monkeypatch):
    monkeypatch.delenv("GEOMFEAT_EVAL_CACHE", raising=False)
    monkeypatch.setenv("GEOMFEAT_CACHE", str(tmp_path / "geomfeat-cache"))
    _, info = build_feature_sets([SPEC], _ala2_10_frames())
    cache = tmp_path / "geomfeat-cache" / "evaluate"
    assert info["visnet-denali"]["cache"] == str(cache)
    assert len(list(cache.glob("*.npy"))) == 4  # graph and residue, scalar and vector norms


def test_an_encoder_pass_shows_a_progress_bar(weights_url, tmp_path, capsys):
    build_feature_sets([SPEC], _ala2_10_frames(), cache=tmp_path, progress=True)
    err = capsys.readouterr().err
    assert "visnet-denali" in err and "10/10" in err and "frame/s" in err


# ----------------------------------------------------------------------------- item 6: short

def _trajectories(tmp_path, lengths: list[int]) -> list[str]:
    """XTC files of the given lengths cut from Ala2 (1 ps apart)."""
    t = md.load(str(EXAMPLE / "ala2.xtc"), top=str(EXAMPLE / "ala2.pdb"))
    paths, start = [], 0
    for i, n in enumerate(lengths):
        path = tmp_path / f"t{i:02d}_{n}.xtc"
        t[start:start + n].save_xtc(str(path))
        paths.append(str(path))
        start += n
    return paths


def test_short_trajectories_are_kept_whole_not_dropped(tmp_path):
    """6 trajectories of 30 frames and 2 of 400, 10 blocks each, lag 20 frames: the short
    ones' blocks of 3 frames hold no pair, so the short trajectories used to vanish; now they
    are cut into fewer blocks (here: kept whole) and every frame is in a part."""
    lengths = [30] * 6 + [400] * 2
    paths = _trajectories(tmp_path, lengths)
    result = compare(EXAMPLE / "ala2.pdb", paths, ["2ps", "20ps"], features=["torsions"],
                     reference=None, seeds=[0, 1], n_blocks=10, vampnet=False, log=None,
                     out=tmp_path / "r")
    for sp in result.report["splits"]:
        assert sum(sp["frames"].values()) == sum(lengths)
        assert sp["left_out"] == []
        pieces = [tuple(p) for part in ("train", "validation", "test") for p in sp[part]]
        assert {(i, 0, 30) for i in range(6)} <= set(pieces)  # whole
        assert sum(sp["trajectories"].values()) >= len(lengths)


def test_what_is_left_out_is_logged_and_reported_with_the_reason(tmp_path):
    """A trajectory shorter than the longest lag + 1 holds no pair: it is named, not hidden,
    and every part's frames and trajectories are in the log and the report."""
    lengths = [8, 200, 150]
    paths = _trajectories(tmp_path, lengths)
    messages: list[str] = []
    result = compare(EXAMPLE / "ala2.pdb", paths, ["10ps"], features=["torsions"],
                     reference=None, seeds=[0], vampnet=False, log=messages.append,
                     out=tmp_path / "r", name="c")
    sp = result.report["splits"][0]
    assert sp["left_out"] == [{"trajectory": 0, "frames": 8,
                               "reason": "shorter than 11 frames (the longest lag + 1): "
                                         "holds no pair"}]
    assert sum(sp["frames"].values()) == 350
    assert result.report["settings"]["block"] == {  # default: 5 x the longest lag here
        "frames": 50, "text": "5 x lag 10ps", "ps": 50.0}
    line = next(m for m in messages if m.startswith("split seed 0"))
    assert "left out 1 trajectories (8 frames, 2.2 %)" in line and "t00_8.xtc" in line
    for part in ("train", "validation", "test"):
        assert f"{part} {sp['frames'][part]} frames" in line
    text = (tmp_path / "r" / "c.md").read_text()
    assert "**Left out** (in no part): 1 trajectories, 8 frames" in text
    assert "`t00_8.xtc` (8)" in text and "| seed | train frames |" in text
    assert json.loads((tmp_path / "r" / "c.json").read_text())["splits"][0]["left_out"]


def test_block_is_a_duration(tmp_path, capsys):
    """``--block 50ps`` cuts 200 frames of 10 ps into four blocks of five frames."""
    assert main(_cli(tmp_path, "--lag", "10ps", "--features", "torsions", "--block", "50ps",
                     "--seeds", "0", "-q")) == 0
    report = json.loads((tmp_path / "out" / "compare.json").read_text())
    sp = report["splits"][0]
    pieces = sorted(tuple(p) for part in ("train", "validation", "test") for p in sp[part])
    assert len(pieces) == 40 and all(b - a == 5 for _, a, b in pieces)
    assert report["settings"]["block"] == {"frames": 5, "text": "50ps", "ps": 50.0}
    for bad, message in ((["--block", "10ps"], "must be longer than the longest lag 10ps"),
                         (["--block", "5ps"], "not a whole number of frames"),
                         (["--block", "50ps", "--split", "trajectory"], "split by block")):
        status = main(_cli(tmp_path, "--lag", "10ps", "--features", "torsions", "-q", *bad))
        assert message in _one_line_error(capsys, status)


# ----------------------------------------------------------------------------- one-line errors

def test_nan_in_npy_features_is_one_line_naming_row_and_column(tmp_path, capsys):
    a = np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32)
    a[5, 1] = np.nan
    np.save(tmp_path / "x.npy", a)
    status = main(_cli(tmp_path, "--lag", "10ps", "--features", f"npy:{tmp_path / 'x.npy'}",
                       "-q"))
    err = _one_line_error(capsys, status)
    assert "x.npy: non-finite value (nan) in row 5, column 1" in err


def test_constant_features_are_one_line_naming_the_feature_set(tmp_path, capsys):
    np.save(tmp_path / "c.npy", np.ones((200, 3), np.float32))
    status = main(_cli(tmp_path, "--lag", "10ps", "--features", f"npy:{tmp_path / 'c.npy'}",
                       "-q"))
    err = _one_line_error(capsys, status)
    assert f"feature set npy:{tmp_path / 'c.npy'}: every one of its 3 features is constant" in err


def test_features_constant_on_a_training_part_name_feature_set_lag_and_seed(monkeypatch):
    """Linear VAMP runs first for every split and lag, so deeptime's ZeroRankError is one
    GeomfeatError naming where it arose before any VAMPNet is trained."""
    from geomfeat.errors import GeomfeatError
    from geomfeat.evaluate import make_split, scoring
    from geomfeat.evaluate.features import FeatureSet

    x = np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32)
    sp = make_split([300], n_blocks=6, seed=3)
    for _, a, b in sp.train:
        x[a:b] = 1.0
    monkeypatch.setattr(scoring, "train_vampnets", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(GeomfeatError, match="feature set flat, lag 2 frames, seed 3: VAMP "
                                            "finds no direction to keep in its features"):
        scoring.score_splits(FeatureSet("flat", [x], "test"), [sp], [2], dims=[1, 2],
                             recipe=TINY)


def test_a_lag_longer_than_every_trajectory_names_lag_lengths_and_fix(tmp_path, capsys):
    status = main(_cli(tmp_path, "--lag", "10ps", "5ns", "--features", "torsions", "-q"))
    err = _one_line_error(capsys, status)
    assert "lag 5ns (500 frames = 5000 ps) is too long for any trajectory" in err
    assert "frames after stride 10: 200" in err and "at most 65 frames = 650 ps" in err


def test_a_bad_layer_index_fails_before_any_embedding(tmp_path, capsys):
    """The encoder has 6 interaction layers; layer 7 is refused before the encoder runs."""
    status = main(_cli(tmp_path, "--lag", "10ps", "--cache", str(tmp_path / "cache"),
                       "--features", "visnet-denali:graph:scalar:0,7", "-q"))
    err = _one_line_error(capsys, status)
    assert "layer 7 does not exist: the encoder has 6 interaction layers" in err
    assert not (tmp_path / "cache").exists()  # nothing was embedded


# ----------------------------------------------------------------------------- usability

def _compare_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["compare"]


def test_help_gives_every_option_a_text_and_its_default():
    parser = _compare_parser()
    text = " ".join(parser.format_help().split())
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        assert action.help, action.dest
        if action.required or action.default in (None, False):
            continue
        assert "default: " in parser.formatter_class(prog="x")._get_help_string(action), \
            action.dest
    assert "(default: 30)" in text and "(default: heavy)" in text
    assert "--block TIME" in text and "5 x the longest lag and the longest" in text


def test_device_defaults_to_cuda_when_available(monkeypatch):
    from geomfeat.evaluate.preflight import resolve_device

    args = build_parser().parse_args(["compare", *ALA2, "--lag", "1", "-o", "x"])
    assert args.device is None  # as for embed
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device(None) == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device(None) == "cpu"


def test_progress_bars_and_time_left_unless_quiet(tmp_path, capsys):
    common = ["compare", *ALA2, "--stride", "10", "--lag", "10ps", "--features", "torsions",
              "--seeds", "0", "1", "--n-blocks", "6", "--budget", "300", "--batch-size", "64",
              "--steps-per-epoch", "3", "--max-epochs", "2", "--restarts", "1"]
    assert main([*common, "-o", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    # a bar per batched fit: one per feature set, all its seeds', lags' and restarts' networks
    for fs in ("torsions", "distances"):
        assert f"VAMPNet {fs} lag 1 seeds 0, 1" in err
    assert "epoch" in err and "best_val=" in err
    assert "left]" in err  # the remaining time, after the first feature set
    assert main([*common, "-o", str(tmp_path / "b"), "-q"]) == 0
    assert capsys.readouterr().err == ""


def test_default_block_follows_the_lag_and_keeps_ten_blocks_of_long_trajectories():
    """Long equal trajectories and a short lag: the split of earlier versions (10 blocks per
    trajectory); a long lag: 5 lags per block; too long for three blocks: shortened."""
    from types import SimpleNamespace

    from geomfeat.evaluate import make_split
    from geomfeat.evaluate.lags import Lag
    from geomfeat.evaluate.preflight import block_length

    def default(lengths, lag):
        data = SimpleNamespace(lengths=lengths, dt_ps=2.0)
        return block_length(None, None, "block", [Lag(lag, f"{lag}", 2.0 * lag)], data)

    block = default([11872, 11872], 2)
    assert (int(block), block.text) == (1187, "longest trajectory / 10")
    by_block = make_split([11872] * 2, block=int(block), min_length=3, seed=4)
    by_count = make_split([11872] * 2, n_blocks=10, min_length=3, seed=4)
    for part in ("train", "validation", "test"):
        assert by_block.part(part) == by_count.part(part)
    assert (int(default([1250] * 8, 50)), default([1250] * 8, 50).ps) == (250, 500.0)
    assert default([100], 30).text == "the longest block that gives three pieces"
    assert int(default([100], 30)) == 33
