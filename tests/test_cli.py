"""The command line: ``geomfeat embed`` and ``geomfeat models``."""

from __future__ import annotations

import json
import subprocess
import sys

import mdtraj as md
import numpy as np
import pytest

from geomfeat import GeomFeaturizer, __version__
from geomfeat.cli import main


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_embed_example_equals_python_api_and_writes_sidecar(example_files, tmp_path, capsys,
                                                            weights_url):
    xtc, pdb = example_files
    out = tmp_path / "emb.npy"
    code, _, err = run_cli(capsys, "embed", str(xtc), str(pdb), "-o", str(out), "--stride", "50")
    assert code == 0, err
    emb = np.load(out)
    assert emb.shape == (40, 64) and emb.dtype == np.float32
    expected = GeomFeaturizer("visnet-denali").transform(md.load(xtc, top=pdb, stride=50))
    assert np.abs(emb - expected).max() <= 1e-5
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["model"] == "visnet-denali"
    assert sidecar["sha256"] == "b8f1ef9b591c57f7687566bd60d3664800956ac280cf2ae8e64f54196cd8d417"
    assert sidecar["select"] == "heavy" and sidecar["pool"] == "graph"
    assert sidecar["stride"] == 50 and sidecar["shape"] == [40, 64]
    assert sidecar["geomfeat_version"] == __version__
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.json", "emb.npy"]


def test_embed_options_reach_the_featurizer(example_files, tmp_path, capsys, weights_url):
    xtc, pdb = example_files
    out = tmp_path / "tokens.npy"
    code, _, err = run_cli(capsys, "embed", str(xtc), str(pdb), "-o", str(out), "--select",
                           "all", "--pool", "residue", "--reduce", "mean", "--features",
                           "equivariant", "--start", "10", "--stop", "20", "--stride", "5",
                           "--batch-size", "1", "--device", "cpu", "-q")
    assert code == 0, err
    assert err == ""  # --quiet: no progress bar
    assert np.load(out).shape == (2, 3, 4, 64)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert (sidecar["start"], sidecar["stop"], sidecar["stride"]) == (10, 20, 5)


def test_models_lists_registry_and_cache_state(capsys, weights_url, monkeypatch, tmp_path):
    monkeypatch.setenv("GEOMFEAT_CACHE", str(tmp_path))
    code, out, _ = run_cli(capsys, "models")
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("visnet-denali"))
    assert "visnet" in row and "7.5" in row and " no " in row
    assert str(tmp_path) in out


@pytest.mark.slow
def test_quiet_runs_print_nothing_even_when_they_download_the_weights(
        example_files, tmp_path, weights_url):
    """pooch logs "Downloading data from ..." through its own Logger object (not
    ``logging.getLogger("pooch")``); ``-q`` silences it. A fresh process and cache, as a user's
    first run."""
    import os

    xtc, pdb = map(str, example_files)
    env = {**os.environ, "GEOMFEAT_CACHE": str(tmp_path / "fresh-cache")}
    for args in (["embed", xtc, pdb, "-o", str(tmp_path / "e.npy"), "--stop", "4"],
                 ["compare", pdb, xtc, "--stride", "10", "--lag", "20ps", "--seeds", "0",
                  "--no-vampnet", "--features", "visnet-denali", "-o", str(tmp_path / "c")]):
        run = subprocess.run([sys.executable, "-m", "geomfeat", *args, "-q"], env=env,
                             capture_output=True, text=True, timeout=300)
        assert (run.returncode, run.stdout, run.stderr) == (0, "", ""), args[0]
    assert (tmp_path / "fresh-cache" / "visnet_l6_h64_rbf64_r75.pth").is_file()  # fetched


def bad_runs(xtc, pdb, tmp_path):
    small = tmp_path / "small.pdb"
    md.load(pdb).atom_slice(range(10)).save_pdb(str(small))
    out = str(tmp_path / "e.npy")
    return {
        "unknown model": (["embed", xtc, pdb, "-o", out, "--model", "nope"], "known models"),
        "atom mismatch": (["embed", xtc, str(small), "-o", out], "same number of atoms"),
        "empty selection": (["embed", xtc, pdb, "-o", out, "--select", "resname HOH"],
                            "matches no atoms"),
        "missing trajectory": (["embed", "missing.xtc", pdb, "-o", out], "missing.xtc"),
        "missing topology": (["embed", xtc, "missing.pdb", "-o", out], "missing.pdb"),
        "missing folder": (["embed", xtc, pdb, "-o", str(tmp_path / "no" / "e.npy")],
                           "output folder does not exist"),
        "not npy": (["embed", xtc, pdb, "-o", str(tmp_path / "e.txt")], "must end in .npy"),
        "tf32 on cpu": (["embed", xtc, pdb, "-o", out, "--dtype", "tf32", "--device", "cpu"],
                        "needs a CUDA device"),
    }


@pytest.mark.parametrize("case", ["unknown model", "atom mismatch", "empty selection",
                                  "missing trajectory", "missing topology", "missing folder",
                                  "not npy", "tf32 on cpu"])
def test_bad_input_is_one_line_and_nonzero(case, example_files, tmp_path, capsys, weights_url):
    xtc, pdb = map(str, example_files)
    args, expected = bad_runs(xtc, pdb, tmp_path)[case]
    code, _, err = run_cli(capsys, *args)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("geomfeat: error:"), err
    assert expected in lines[0]
    assert not any(p.name.endswith(".npy") for p in tmp_path.iterdir())


def test_failure_mid_run_keeps_earlier_output_and_leaves_no_partial_file(
        example_files, tmp_path, capsys, weights_url):
    import MDAnalysis as mda

    xtc, pdb = example_files
    out = tmp_path / "emb.npy"
    assert run_cli(capsys, "embed", str(xtc), str(pdb), "-o", str(out), "--stop", "4")[0] == 0
    before = out.read_bytes()
    broken = tmp_path / "broken.trr"
    universe = mda.Universe(str(pdb), str(xtc))
    with mda.Writer(str(broken), n_atoms=universe.atoms.n_atoms) as writer:
        for ts in universe.trajectory[:8]:
            if ts.frame == 6:
                ts.positions[1] = np.nan  # CH3 of ACE, a heavy atom
            writer.write(universe.atoms)
    code, _, err = run_cli(capsys, "embed", str(broken), str(pdb), "-o", str(out),
                           "--batch-size", "2", "--overwrite")
    assert code == 1 and "frame 6" in err and str(broken) in err
    assert out.read_bytes() == before
    assert not [p.name for p in tmp_path.iterdir() if "partial" in p.name]


def test_console_entry_point_prints_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "geomfeat", "embed", "a.xtc", "b.pdb",
                             "-o", str(tmp_path / "e.npy")], capture_output=True, text=True,
                            cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == "geomfeat: error: topology file not found: b.pdb"


def test_dtype_choices_are_the_featurizers():
    from geomfeat.cli import DTYPES
    from geomfeat.featurizer import _DTYPES

    assert set(DTYPES) == set(_DTYPES)
