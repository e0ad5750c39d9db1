"""Many trajectories, resumable outputs, killed runs (the command line's streaming path)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import mdtraj as md
import numpy as np
import pytest

from geomfeat import GeomFeaturizer
from geomfeat.cli import main


@pytest.fixture(scope="module")
def trajectories(example_files, tmp_path_factory):
    """Three short trajectories of the example (30, 20 and 10 frames) and its topology."""
    xtc, pdb = example_files
    folder = tmp_path_factory.mktemp("trajs")
    traj = md.load(xtc, top=pdb)
    paths = []
    for name, frames in (("a", slice(0, 30)), ("b", slice(100, 120)), ("c", slice(500, 510))):
        path = folder / f"{name}.xtc"
        traj[frames].save_xtc(str(path))
        paths.append(path)
    return paths, pdb


def embed(*args: str) -> int:
    return main(["embed", *map(str, args), "-q"])


def test_many_trajectories_one_output_each(trajectories, tmp_path, weights_url):
    paths, pdb = trajectories
    out = tmp_path / "emb"
    assert embed(*paths, "--top", pdb, "-o", out) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.json", "a.npy", "b.json", "b.npy",
                                                     "c.json", "c.npy", "geomfeat-manifest.json"]
    manifest = json.loads((out / "geomfeat-manifest.json").read_text())
    assert [e["status"] for e in manifest["outputs"]] == ["written"] * 3
    assert [e["frames"] for e in manifest["outputs"]] == [30, 20, 10]
    assert manifest["run"]["scheduler"] == "serial"
    featurizer = GeomFeaturizer()
    for path, frames in zip(paths, (30, 20, 10), strict=True):
        emb = np.load(out / f"{path.stem}.npy")
        assert emb.shape == (frames, 64)
        np.testing.assert_allclose(emb, featurizer.transform(md.load(path, top=pdb)), atol=1e-5)
        assert json.loads((out / f"{path.stem}.json").read_text())["trajectory"] == str(path)


def test_second_run_does_no_work(trajectories, tmp_path, weights_url, monkeypatch, capsys):
    paths, pdb = trajectories
    out = tmp_path / "emb"
    assert embed(*paths, "--top", pdb, "-o", out) == 0
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("[abc].*")}

    def no_work(*args, **kwargs):
        raise AssertionError("a complete output was embedded again")

    monkeypatch.setattr(GeomFeaturizer, "embed_positions", no_work)
    capsys.readouterr()
    assert main(["embed", *map(str, paths), "--top", str(pdb), "-o", str(out)]) == 0
    assert "0 written, 3 already complete" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("[abc].*")} == stamps
    manifest = json.loads((out / "geomfeat-manifest.json").read_text())
    assert [e["status"] for e in manifest["outputs"]] == ["complete"] * 3


def test_other_settings_need_overwrite(trajectories, tmp_path, weights_url, capsys):
    paths, pdb = trajectories
    out = tmp_path / "a.npy"
    assert embed(paths[0], pdb, "-o", out) == 0
    assert embed(paths[0], pdb, "-o", out, "--stride", "2") == 1
    assert "made with other settings" in capsys.readouterr().err
    assert np.load(out).shape == (30, 64)
    assert embed(paths[0], pdb, "-o", out, "--stride", "2", "--overwrite") == 0
    assert np.load(out).shape == (15, 64)
    assert json.loads(out.with_suffix(".json").read_text())["stride"] == 2


def test_several_trajectories_need_a_folder(trajectories, tmp_path, capsys):
    paths, pdb = trajectories
    assert embed(*paths, "--top", pdb, "-o", tmp_path / "x.npy") == 1
    assert "need an output folder" in capsys.readouterr().err
    assert embed(*paths, "-o", tmp_path / "x") == 1
    assert "--top" in capsys.readouterr().err


def test_same_names_in_one_folder_are_refused(trajectories, tmp_path, capsys):
    paths, pdb = trajectories
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "a.xtc").write_bytes(paths[0].read_bytes())
    assert embed(paths[0], other / "a.xtc", "--top", pdb, "-o", tmp_path / "out") == 1
    assert "would both be written" in capsys.readouterr().err


def test_killed_run_leaves_no_complete_looking_output_and_resumes(example_files, tmp_path,
                                                                  weights_url):
    xtc, pdb = example_files
    out = tmp_path / "emb.npy"
    partial = tmp_path / ".emb.npy.partial"
    command = [sys.executable, "-m", "geomfeat", "embed", str(xtc), str(pdb), "-o", str(out),
               "--stop", "120", "--batch-size", "2", "-q"]
    proc = subprocess.Popen(command, cwd=tmp_path, env=os.environ.copy())
    deadline = time.monotonic() + 120
    while not partial.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert partial.exists(), "the run ended before it could be killed"
    assert not out.exists() and not out.with_suffix(".json").exists()

    assert embed(xtc, pdb, "-o", out, "--stop", "120", "--batch-size", "2") == 0
    assert not partial.exists()
    fresh = tmp_path / "fresh.npy"
    assert embed(xtc, pdb, "-o", fresh, "--stop", "120", "--batch-size", "2") == 0
    assert np.array_equal(np.load(out), np.load(fresh))


def test_streamed_output_equals_one_shot(example_files, tmp_path, weights_url):
    xtc, pdb = example_files
    out = tmp_path / "emb.npy"
    assert embed(xtc, pdb, "-o", out, "--start", "3", "--stop", "60", "--stride", "4",
                 "--batch-size", "3") == 0
    one_shot = GeomFeaturizer(batch_size=1000).transform(md.load(xtc, top=pdb)[:60])[3::4]
    np.testing.assert_allclose(np.load(out), one_shot, atol=1e-5)


def test_interrupted_run_keeps_finished_outputs_and_no_partials(trajectories, tmp_path,
                                                                weights_url, monkeypatch,
                                                                capsys):
    paths, pdb = trajectories
    out = tmp_path / "emb"
    real = GeomFeaturizer.embed_positions
    calls = []

    def interrupt_second_trajectory(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 1:  # each trajectory is one batch: the second is b.xtc
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(GeomFeaturizer, "embed_positions", interrupt_second_trajectory)
    assert main(["embed", *map(str, paths), "--top", str(pdb), "-o", str(out), "-q"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["a.json", "a.npy",
                                                     "geomfeat-manifest.json"]
    manifest = json.loads((out / "geomfeat-manifest.json").read_text())
    assert [e["status"] for e in manifest["outputs"]] == ["written", "pending", "pending"]


def test_finishing_twice_is_harmless(tmp_path):
    """A finish task rerun after its worker died between the rename and the sidecar."""
    from geomfeat.output import create_partial, finish_output, is_complete

    out = tmp_path / "x.npy"
    expected = {"shape": [3, 2], "model": "visnet-denali"}
    create_partial(out, expected["shape"])
    finish_output(out, expected)
    (tmp_path / "x.json").unlink()  # the worker died before writing the sidecar
    finish_output(out, expected)
    assert is_complete(out, expected)
