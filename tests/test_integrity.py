"""Nothing lost, nothing silently wrong: locks, input identity, full disks, foreign files.

Each test states the fault it guards against; on geomfeat 0.1.0 (before these checks) every
one of them failed: the second run clobbered the first's rows, a changed input was reported
"already complete", a full disk left an all-zero file under its final name, and so on.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mdtraj as md
import numpy as np
import pytest

from geomfeat import GeomFeaturizer, embed_many
from geomfeat.cli import main
from geomfeat.errors import OutputError, OutputLockedError
from geomfeat.interrupts import Terminated, interrupts_not_lost
from geomfeat.locks import hold, lock_path
from geomfeat.sanity import quiet_failed_readers


@pytest.fixture(scope="module")
def runs(example_files, tmp_path_factory):
    """Two 6-frame trajectories cut from different parts of the example, and the topology."""
    xtc, pdb = example_files
    folder = tmp_path_factory.mktemp("runs")
    traj = md.load(xtc, top=pdb)
    paths = []
    for name, start in (("r0", 0), ("r1", 100)):
        path = folder / f"{name}.xtc"
        traj[start : start + 6].save_xtc(str(path))
        paths.append(path)
    return paths, pdb


def cli(capsys, *args) -> tuple[int, str]:
    code = main(["embed", *map(str, args)])
    return code, capsys.readouterr().err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def command(*args) -> list[str]:
    return [sys.executable, "-m", "geomfeat", "embed", *map(str, args)]


# ------------------------------------------------------------------------------- 1. locking
def test_a_second_run_on_a_locked_output_fails_at_once_naming_the_holder(runs, tmp_path):
    """Before: the second run re-created the first's .partial file and both renamed it."""
    (r0, _), pdb = runs
    out = tmp_path / "k.npy"
    with hold([out]):  # this test process is the first run
        began = time.monotonic()
        result = subprocess.run(command(r0, pdb, "-o", out, "-q"), capture_output=True,
                                text=True, env=os.environ.copy())
        assert time.monotonic() - began < 60
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert line.startswith(f"geomfeat: error: {out} is being written by another geomfeat run")
    assert f"pid {os.getpid()}" in line and "--wait" in line
    assert not out.exists() and not list(tmp_path.glob(".k.npy.partial"))


def test_wait_waits_for_the_holder_then_writes(runs, tmp_path, weights_url):
    (r0, _), pdb = runs
    out = tmp_path / "k.npy"
    with hold([out]):
        proc = subprocess.Popen(command(r0, pdb, "-o", out, "-q", "--wait"),
                                stderr=subprocess.PIPE, text=True, env=os.environ.copy())
        time.sleep(3)
        assert proc.poll() is None, proc.stderr.read()  # still waiting for this process
        assert not out.exists()
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    assert np.load(out).shape == (6, 64)
    assert not lock_path(out).exists()  # the lock file goes with the run


def test_python_api_lock_message_spells_the_python_option(runs, tmp_path):
    (r0, _), pdb = runs
    (tmp_path / "out").mkdir()
    with hold([tmp_path / "out" / "r0.npy"]):
        with pytest.raises(OutputLockedError, match=r"r0\.npy is being written.*wait=True"):
            embed_many("visnet-denali", [r0], pdb, tmp_path / "out", progress=False)


def test_runs_into_one_folder_keep_each_others_manifest_entries(runs, tmp_path, weights_url):
    """Before: each run wrote the manifest of its own trajectories only (a job array lost all
    but the last task's entries)."""
    (r0, r1), pdb = runs
    out = tmp_path / "emb"
    embed_many("visnet-denali", [r0], pdb, out, progress=False)
    embed_many("visnet-denali", [r1], pdb, out, progress=False)
    embed_many("visnet-denali", [r0], pdb, out, progress=False)  # again: replaced, not added
    entries = json.loads((out / "geomfeat-manifest.json").read_text())["outputs"]
    assert [(Path(e["output"]).name, e["status"]) for e in entries] == [
        ("r0.npy", "complete"), ("r1.npy", "written")]
    assert sorted(p.name for p in out.iterdir()) == [
        "geomfeat-manifest.json", "r0.json", "r0.npy", "r1.json", "r1.npy"]


# ------------------------------------------------------------------------- 2. input identity
def test_output_of_other_input_files_is_not_complete(runs, tmp_path, capsys, weights_url):
    """Before: ``-o o.npy`` from r0 and then r1 said "0 written, 1 already complete"."""
    (r0, r1), pdb = runs
    out = tmp_path / "o.npy"
    assert cli(capsys, r0, pdb, "-o", out, "-q")[0] == 0
    recorded = json.loads(out.with_suffix(".json").read_text())["inputs"]
    assert recorded["trajectory"]["path"] == str(r0.resolve())
    assert recorded["trajectory"]["frames"] == 6
    assert recorded["trajectory"]["size"] == r0.stat().st_size
    assert len(recorded["topology"]["sample_sha256"]) == 64
    before = out.read_bytes()

    code, err = cli(capsys, r1, pdb, "-o", out, "-q")
    assert code == 1
    line = one_line(err)
    assert "made from other input files" in line and "trajectory" in line and "r1.xtc" in line
    assert "--overwrite" in line
    assert out.read_bytes() == before

    assert cli(capsys, r1, pdb, "-o", out, "-q", "--overwrite")[0] == 0
    expected = GeomFeaturizer().transform(md.load(r1, top=pdb))
    np.testing.assert_allclose(np.load(out), expected, atol=1e-5)


def test_a_copied_input_is_the_same_input(runs, tmp_path, capsys, weights_url):
    (r0, _), pdb = runs
    out = tmp_path / "o.npy"
    assert cli(capsys, r0, pdb, "-o", out, "-q")[0] == 0
    copy = tmp_path / "copy.xtc"
    shutil.copy(r0, copy)  # same content, other path and mtime: same input
    code, err = cli(capsys, copy, pdb, "-o", out)
    assert code == 0
    assert one_line(err) == f"{out}: 0 written, 1 already complete"


# ---------------------------------------------------------------------------- 3. disk full
@pytest.fixture()
def small_tmpfs(mount_tmpfs):
    """A 300 KiB tmpfs (needs root; skipped where mounting is not allowed)."""
    return mount_tmpfs(300)


def test_a_full_disk_is_an_error_and_leaves_nothing_that_looks_complete(
        example_files, small_tmpfs, capsys, tmp_path, weights_url):
    """Before: a 300 KB tmpfs left o.npy with 308 all-zero rows under its final name."""
    xtc, pdb = example_files
    atoms = ("--select", "all", "--pool", "atom", "-q")  # 5632 bytes a frame
    code, err = cli(capsys, xtc, pdb, "-o", small_tmpfs / "o.npy", "--stop", "100", *atoms)
    assert code == 1  # 563 kB do not fit: said before any work
    assert one_line(err).startswith(f"geomfeat: error: {small_tmpfs / 'o.npy'} needs 563200 "
                                    "bytes but its file system has only")
    assert list(small_tmpfs.iterdir()) == []

    traj = md.load(xtc, top=pdb)  # two outputs of 169 kB: each fits alone, not both
    paths = [tmp_path / "r0.xtc", tmp_path / "r1.xtc"]
    traj[:30].save_xtc(str(paths[0]))
    traj[30:60].save_xtc(str(paths[1]))
    out = small_tmpfs / "emb"
    code, err = cli(capsys, *paths, "--top", pdb, "-o", out, *atoms)
    assert code == 1
    line = one_line(err)
    assert "1 of 2 trajectories failed" in line and "could not write r1.npy" in line
    assert "No space left on device" in line and "free on its file system" in line
    assert sorted(p.name for p in out.iterdir()) == ["geomfeat-manifest.json", "r0.json",
                                                     "r0.npy"]
    np.testing.assert_allclose(np.load(out / "r0.npy"), GeomFeaturizer(
        select="all", pool="atom").transform(traj[:30]), atol=1e-5)


def test_a_completely_full_disk_names_the_lock_file_and_leaves_none_behind(small_tmpfs):
    """Before: ``OSError: [Errno 28] No space left on device`` without a path, and a 0-byte
    ``.o.npy.lock`` left behind (every command takes its locks through ``hold``)."""
    fill = small_tmpfs / "fill"
    with open(fill, "wb", buffering=0) as handle, pytest.raises(OSError):
        while True:
            handle.write(b"\0" * 4096)
    with pytest.raises(OutputError, match=rf"could not write the lock file "
                                          rf"{small_tmpfs / '.o.npy.lock'}: No space left on "
                                          r"device \(0 bytes free"):
        with hold([small_tmpfs / "o.npy"]):
            pass
    assert [p.name for p in small_tmpfs.iterdir()] == ["fill"]


def test_short_writes_are_continued(runs, tmp_path, monkeypatch, capsys, weights_url):
    """Before: the byte count returned by ``os.pwrite`` was ignored."""
    import geomfeat.output as output

    (r0, _), pdb = runs
    real = os.pwrite

    def short(fd, data, offset):
        data = memoryview(data).cast("B")
        return real(fd, data[: max(1, len(data) // 3)], offset)

    monkeypatch.setattr(output.os, "pwrite", short)
    out = tmp_path / "o.npy"
    assert cli(capsys, r0, pdb, "-o", out, "-q")[0] == 0
    monkeypatch.undo()
    expected = GeomFeaturizer().transform(md.load(r0, top=pdb))
    np.testing.assert_allclose(np.load(out), expected, atol=1e-5)


def test_failed_writes_name_the_file_and_the_free_space(runs, tmp_path, monkeypatch, capsys,
                                                         weights_url):
    import geomfeat.output as output

    (r0, _), pdb = runs

    real = os.pwrite

    def full(fd, data, offset):
        if offset == 0:  # the lock file's holder line
            return real(fd, data, offset)
        raise OSError(errno.ENOSPC, "No space left on device")  # the rows (after the header)

    monkeypatch.setattr(output.os, "pwrite", full)
    code, err = cli(capsys, r0, pdb, "-o", tmp_path / "o.npy", "-q")
    assert code == 1
    line = one_line(err)
    assert "could not write o.npy" in line and "No space left on device" in line
    assert "free on its file system" in line
    assert list(tmp_path.iterdir()) == []


def test_a_manifest_that_cannot_be_written_is_reported_with_the_first_error(
        runs, tmp_path, monkeypatch, capsys, weights_url):
    """Before: the manifest write failed in a ``finally`` and replaced the run's own error."""
    import geomfeat.cluster as cluster

    (r0, r1), pdb = runs

    def no_manifest(manifest):
        raise OutputError("could not write geomfeat-manifest.json: No space left on device")

    monkeypatch.setattr(cluster, "write_manifest", no_manifest)
    bad = tmp_path / "bad.xtc"
    bad.write_bytes(b"not an xtc file at all")
    code, err = cli(capsys, r0, bad, "--top", pdb, "-o", tmp_path / "emb", "-q")
    assert code == 1
    line = one_line(err)
    assert "1 of 2 trajectories failed" in line and "bad.xtc" in line

    code, err = cli(capsys, r1, "--top", pdb, "-o", tmp_path / "emb2", "-q")
    assert code == 1
    assert "1 outputs written, but the manifest could not be" in one_line(err)
    assert (tmp_path / "emb2" / "r1.npy").is_file()


# ---------------------------------------------------------------------- 4. foreign files
def test_files_geomfeat_did_not_make_are_not_overwritten(runs, tmp_path, capsys, weights_url):
    (r0, _), pdb = runs
    npy = tmp_path / "o.npy"
    np.save(npy, np.arange(3.0))
    code, err = cli(capsys, r0, pdb, "-o", npy, "-q")
    assert code == 1
    assert "without the sidecar o.json" in one_line(err) and "--overwrite" in err
    np.testing.assert_array_equal(np.load(npy), np.arange(3.0))

    notes = tmp_path / "X.json"
    notes.write_text('{"my": "notes"}')
    code, err = cli(capsys, r0, pdb, "-o", tmp_path / "X.npy", "-q")
    assert code == 1
    assert "not a geomfeat sidecar" in one_line(err)
    assert notes.read_text() == '{"my": "notes"}' and not (tmp_path / "X.npy").exists()

    assert cli(capsys, r0, pdb, "-o", npy, "-q", "--overwrite")[0] == 0
    assert np.load(npy).shape == (6, 64)


# --------------------------------------------------------------------------- 5. empty results
@pytest.mark.parametrize("args", [("--start", "10000"), ("--stop", "0")])
def test_a_slice_without_frames_is_an_error_naming_the_length(args, runs, tmp_path, capsys):
    (r0, _), pdb = runs
    code, err = cli(capsys, r0, pdb, "-o", tmp_path / "o.npy", "-q", *args)
    assert code == 1
    assert "select no frames" in one_line(err) and "which has 6 frames" in err
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------- 6. SIGTERM
def test_sigterm_ends_a_run_like_ctrl_c(example_files, tmp_path, weights_url):
    """Before: SIGTERM killed the process at once (exit -15) and left the .partial file."""
    xtc, pdb = example_files
    out = tmp_path / "emb.npy"
    partial = tmp_path / ".emb.npy.partial"
    proc = subprocess.Popen(command(xtc, pdb, "-o", out, "--batch-size", "1", "-q"),
                            stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    deadline = time.monotonic() + 120
    while not partial.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143
    line = one_line(proc.stderr.read())
    assert line.startswith("geomfeat: terminated (SIGTERM)")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


class SignalledWhileCollected:
    """An object whose ``__del__`` is running when ``signum`` arrives."""

    def __init__(self, signum: int) -> None:
        self.signum = signum

    def __del__(self) -> None:
        signal.raise_signal(self.signum)


@pytest.mark.parametrize(("signum", "raised"), [(signal.SIGTERM, Terminated),
                                                (signal.SIGINT, KeyboardInterrupt)])
def test_an_interrupt_that_arrives_in_a_finalizer_is_not_lost(signum, raised):
    """Before: Python dropped the exception raised in ``__del__`` ("Exception ignored in")
    and the run went on to its end with exit status 0 (one SIGTERM in five, in CI)."""
    with interrupts_not_lost():
        with pytest.raises(raised):
            SignalledWhileCollected(signum)  # collected at once
            time.sleep(10)  # ordinary code, where the interrupt is raised again


def test_quiet_mdanalysis_finalizers_still_pass_interrupts_on():
    """Before: an interrupt in an MDAnalysis ``__del__`` was dropped with its errors."""

    class Reader(SignalledWhileCollected):
        def __del__(self) -> None:
            signal.raise_signal(self.signum)

    Reader.__del__.__module__ = "MDAnalysis.coordinates.base"  # as MDAnalysis' readers
    with interrupts_not_lost():
        with pytest.raises(Terminated):
            with quiet_failed_readers():
                Reader(signal.SIGTERM)
            time.sleep(10)


# --------------------------------------------------------------- 7. unreadable, mismatches
def test_unreadable_outputs_and_sidecars_are_called_unreadable(runs, tmp_path, capsys,
                                                               weights_url):
    (r0, _), pdb = runs
    out = tmp_path / "o.npy"
    assert cli(capsys, r0, pdb, "-o", out, "-q")[0] == 0
    side = out.with_suffix(".json")
    good = side.read_text()
    side.write_text(good[: len(good) // 2])
    code, err = cli(capsys, r0, pdb, "-o", out, "-q")
    assert code == 1 and "o.json is unreadable" in one_line(err)

    side.write_text(good)
    out.write_bytes(b"\x93NUMPY garbage")
    code, err = cli(capsys, r0, pdb, "-o", out, "-q")
    assert code == 1 and "o.npy is unreadable" in one_line(err)
    assert "other settings" not in err


def test_settings_mismatch_names_old_and_new_and_the_flag_as_typed(runs, tmp_path, capsys,
                                                                   weights_url):
    (r0, _), pdb = runs
    out = tmp_path / "emb"
    embed_many("visnet-denali", [r0], pdb, out, progress=False)
    code, err = cli(capsys, r0, "--top", pdb, "-o", out, "--stride", "2", "--pool",
                    "residue", "-q")
    assert code == 1
    line = one_line(err)
    assert "made with other settings" in line
    assert "pool 'graph' → 'residue'" in line and "stride None → 2" in line
    assert "--overwrite" in line and "overwrite=True" not in line
    with pytest.raises(Exception, match=r"stride None → 2.*overwrite=True"):
        embed_many("visnet-denali", [r0], pdb, out, stride=2, progress=False)


# ------------------------------------------------------------ 17. what the sidecar records
def test_sidecar_records_pbc_option_box_batch_size_and_threads(runs, tmp_path, capsys,
                                                                weights_url):
    """Before: ``"pbc": true`` for a trajectory without box; no batch size, no threads."""
    (r0, _), pdb = runs
    out = tmp_path / "o.npy"
    assert cli(capsys, r0, pdb, "-o", out, "-q", "--batch-size", "4", "--threads", "1")[0] == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["pbc"] is True and sidecar["box_applied"] is False  # the XTC has no box
    assert sidecar["batch_size"] == 4 and sidecar["threads"] == 1
    boxed = tmp_path / "boxed.xtc"
    traj = md.load(r0, top=pdb)
    traj.unitcell_vectors = np.repeat(np.eye(3, dtype=np.float32)[None] * 3.0, 6, axis=0)
    traj.save_xtc(str(boxed))
    out2 = tmp_path / "o2.npy"
    assert cli(capsys, boxed, pdb, "-o", out2, "-q")[0] == 0
    sidecar = json.loads(out2.with_suffix(".json").read_text())
    assert sidecar["pbc"] is True and sidecar["box_applied"] is True
    assert cli(capsys, boxed, pdb, "-o", tmp_path / "o3.npy", "-q", "--no-pbc")[0] == 0
    sidecar = json.loads((tmp_path / "o3.json").read_text())
    assert sidecar["pbc"] is False and sidecar["box_applied"] is False


def test_quiet_silences_the_download_message(runs, tmp_path, capfd, monkeypatch, weights_url):
    (r0, _), pdb = runs
    monkeypatch.setenv("GEOMFEAT_CACHE", str(tmp_path / "cache"))
    assert main(["embed", str(r0), str(pdb), "-o", str(tmp_path / "o.npy"), "-q"]) == 0
    assert capfd.readouterr().err == ""


@pytest.mark.slow
def test_log_output_has_no_repeated_or_interleaved_lines(runs, tmp_path, monkeypatch,
                                                         weights_url):
    """In a log file: pooch's download line, the bar's lines, the summary; none mixed."""
    (r0, _), pdb = runs
    env = {**os.environ, "GEOMFEAT_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "o.npy"
    result = subprocess.run(command(r0, pdb, "-o", out, "--batch-size", "2"),
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert "\r" not in result.stderr
    assert any(line.startswith("Downloading") for line in lines)
    bar = [line for line in lines if line.startswith("visnet-denali:")]
    assert bar and all("Downloading" not in line for line in bar)
    assert len({line.split("[")[0] for line in bar}) == len(bar)  # no count twice
    assert lines[-1] == f"{out}: 1 written, 0 already complete"

    resumed = subprocess.run(command(r0, pdb, "-o", out), capture_output=True, text=True,
                             env=env)
    assert resumed.returncode == 0
    assert resumed.stderr.splitlines() == [f"{out}: 0 written, 1 already complete"]
