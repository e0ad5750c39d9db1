"""Input sanity: wrong units, truncated files, swapped arguments, bad devices and boxes.

Each of these used to give a silently wrong result or a traceback instead of one clear line.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import MDAnalysis as mda
import mdtraj as md
import numpy as np
import pytest

from geomfeat import GeomFeaturizer, InputError, WeightsError, fetch_weights
from geomfeat.cli import main
from geomfeat.trajectory import Frames, load_universe


@pytest.fixture(scope="module")
def frames(example_files):
    """The example's first 3 frames as Frames in Å (all atoms, no box)."""
    xtc, pdb = example_files
    traj = md.load(xtc, top=pdb)[:3]
    z = np.array([a.element.atomic_number for a in traj.topology.atoms])
    return Frames(traj.xyz.astype(np.float64) * 10.0, z)


def one_line_error(capsys, *args: str) -> str:
    assert main(list(args)) != 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("geomfeat: error: "), lines
    return lines[0]


# ------------------------------------------------------------------------------- 8. units
def test_nm_coordinates_given_as_angstrom_are_refused(frames):
    """Before: embeddings 172 % off, no warning."""
    in_nm = (frames.positions / 10.0, frames.atomic_numbers)
    with pytest.raises(InputError, match=r"frame 0 .* look like nm where Å are expected; "
                                         r"multiply them by 10.*check_units=False"):
        GeomFeaturizer(select="all").transform(in_nm)


def test_angstrom_stored_as_nm_is_refused(example_files):
    xtc, pdb = example_files
    traj = md.load(xtc, top=pdb)[:2]
    traj.xyz *= 10.0  # Å values in an mdtraj (nm) trajectory
    with pytest.raises(InputError, match="10× too large"):
        GeomFeaturizer().transform(traj)


def test_the_unit_check_can_be_switched_off(frames, weights_url):
    in_nm = (frames.positions[:1] / 10.0, frames.atomic_numbers)
    assert GeomFeaturizer(select="all", check_units=False).transform(in_nm).shape == (1, 64)


def test_a_dcd_in_nm_is_one_line_naming_the_opt_out(example_files, tmp_path, capsys):
    xtc, pdb = example_files
    universe = mda.Universe(str(pdb), str(xtc))
    dcd = tmp_path / "nm.dcd"
    with mda.Writer(str(dcd), n_atoms=universe.atoms.n_atoms) as writer:
        for _ in universe.trajectory[:3]:
            universe.atoms.positions = universe.atoms.positions / 10.0
            writer.write(universe.atoms)
    line = one_line_error(capsys, "embed", str(dcd), str(pdb), "-o", str(tmp_path / "o.npy"))
    assert "look like nm" in line and "--no-unit-check" in line


def test_sparse_selections_in_angstrom_pass(frames, weights_url):
    """Carbon atoms 2.4 Å apart on average, a CA-like trace: not flagged."""
    heavy = GeomFeaturizer(select=np.array([1, 4, 8, 14, 18]))
    assert heavy.transform(frames).shape == (3, 64)


# ------------------------------------------------------------------------- 10. truncated XTC
def test_a_truncated_xtc_warns_with_the_frame_count(example_files, tmp_path):
    """Before: the cut-off last frame was silently dropped."""
    xtc, pdb = example_files
    cut = tmp_path / "cut.xtc"
    cut.write_bytes(xtc.read_bytes()[:-100])
    with pytest.warns(UserWarning, match=r"cut.xtc ends with 72 bytes .* its 1999 complete"):
        assert load_universe(cut, pdb).trajectory.n_frames == 1999
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_universe(xtc, pdb)  # a whole file: no warning


def test_the_truncation_warning_is_one_line_on_the_command_line(example_files, tmp_path,
                                                                capsys, weights_url):
    xtc, pdb = example_files
    cut = tmp_path / "cut.xtc"
    cut.write_bytes(xtc.read_bytes()[:-100])
    assert main(["embed", str(cut), str(pdb), "-o", str(tmp_path / "o.npy"), "--stop", "2",
                 "-q"]) == 0
    assert capsys.readouterr().err.strip().splitlines() == [
        f"geomfeat: warning: {cut} ends with 72 bytes that are not a complete frame "
        "(truncated?): using its 1999 complete frames"]


# ---------------------------------------------------------------------------- 11. devices
@pytest.mark.parametrize(("device", "message"), [
    ("tpu", "unknown device 'tpu'"),
    ("mps", "MPS backend is not available"),
    ("cuda:7", "device 'cuda:7'"),
])
def test_devices_are_validated_up_front(device, message, example_files, tmp_path, capsys):
    """Before: a 30–46 line PyTorch traceback."""
    xtc, pdb = example_files
    line = one_line_error(capsys, "embed", str(xtc), str(pdb), "-o", str(tmp_path / "o.npy"),
                          "--device", device)
    assert line.startswith("geomfeat: error: --device: ") and message in line


def test_unknown_devices_fail_when_the_featurizer_is_made():
    with pytest.raises(InputError, match="unknown device 'tpu'"):
        GeomFeaturizer(device="tpu")


# --------------------------------------------------- 12. unreadable files: one line, no noise
def test_only_a_failed_open_pays_for_a_full_garbage_collection(example_files, tmp_path,
                                                                monkeypatch):
    """Before: every open ran gc.collect() (0.2 s with PyTorch loaded), half the time of
    ``geomfeat embed`` on 40 trajectories of 50 frames."""
    import gc

    xtc, pdb = example_files
    calls = []
    monkeypatch.setattr(gc, "collect", lambda *args: calls.append(args) or 0)
    load_universe(xtc, pdb)
    assert calls == []
    (tmp_path / "text.xtc").write_text("not an XTC file, just text\n" * 4)
    with pytest.raises(InputError, match="cannot read trajectory"):
        load_universe(tmp_path / "text.xtc", pdb)
    assert len(calls) == 1


@pytest.mark.slow
def test_empty_and_foreign_files_print_one_line_and_no_reader_traceback(example_files,
                                                                        tmp_path):
    """Before: MDAnalysis's ``Exception ignored in ReaderBase.__del__`` followed the error."""
    _, pdb = example_files
    (tmp_path / "empty.dcd").write_bytes(b"")
    (tmp_path / "text.xtc").write_text("not an XTC file, just text\n" * 4)
    (tmp_path / "text.dcd").write_text("not a DCD file, just text\n" * 4)
    script = "\n".join([
        "import gc, sys",
        "from geomfeat.cli import main",
        "for name in ('empty.dcd', 'text.xtc', 'text.dcd'):",
        f"    assert main(['embed', name, {str(pdb)!r}, '-o', 'o.npy']) == 1",
        "gc.collect()",
    ])
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3, result.stderr
    assert lines[0] == "geomfeat: error: trajectory file is empty: empty.dcd"
    assert lines[1].startswith("geomfeat: error: cannot read trajectory text.xtc")
    assert lines[2].startswith("geomfeat: error: cannot read trajectory text.dcd")


# ------------------------------------------------------------ 13. swapped files, bad URL
def test_swapped_trajectory_and_topology_are_named(example_files, tmp_path, capsys):
    """Before: ``NoDataError: This Universe does not contain name information``."""
    xtc, pdb = example_files
    line = one_line_error(capsys, "embed", str(pdb), str(xtc), "-o", str(tmp_path / "o.npy"))
    assert "did you swap TRAJ and TOP?" in line
    line = one_line_error(capsys, "embed", str(xtc), str(xtc), "-o", str(tmp_path / "o.npy"))
    assert "not a topology" in line


def test_a_mistyped_weights_url_scheme_names_the_variable(monkeypatch, tmp_path):
    """Before: pooch's raw ``ValueError: Unrecognized URL protocol 'htps'``."""
    monkeypatch.setenv("GEOMFEAT_WEIGHTS_URL", "htps://example.org/weights")
    monkeypatch.setenv("GEOMFEAT_CACHE", str(tmp_path))
    with pytest.raises(WeightsError, match=r"GEOMFEAT_WEIGHTS_URL='htps://example.org/"
                                           r"weights' has the unknown URL scheme 'htps'"):
        fetch_weights("visnet-denali", progress=False)


# ---------------------------------------------------------- 14. boxes and numeric options
def boxed(frames: Frames, box: np.ndarray) -> Frames:
    return Frames(frames.positions, frames.atomic_numbers, boxes=box)


def test_a_narrow_box_gives_the_no_pbc_hint_with_automatic_batch_size(frames):
    """Before: ``ValueError: frame 0 of the batch`` when the batch size was automatic."""
    with pytest.raises(InputError, match=r"frame 0 .* 12\.00 Å wide.*--no-pbc"):
        GeomFeaturizer().transform(boxed(frames, np.diag([12.0, 20.0, 20.0])))


def test_a_singular_box_is_named(frames):
    """Before: ``LinAlgError`` or a box "nan Å wide"."""
    flat = np.array([[20.0, 0, 0], [0, 20.0, 0], [20.0, 20.0, 0]])
    with pytest.raises(InputError, match=r"frame 0 .* periodic box is singular.*--no-pbc"):
        GeomFeaturizer().transform(boxed(frames, flat))
    with pytest.raises(InputError, match=r"singular"):
        GeomFeaturizer(batch_size=2).transform(boxed(frames, np.zeros((3, 3)) + np.diag(
            [20.0, 20.0, 0.0])))


def test_a_nan_box_is_named(frames):
    box = np.diag([20.0, 20.0, np.nan])
    with pytest.raises(InputError, match=r"frame 0 .* box has non-finite entries"):
        GeomFeaturizer().transform(boxed(frames, box))


@pytest.mark.parametrize(("option", "value"), [
    ("memory_budget", -1.0), ("memory_budget", float("nan")), ("memory_budget", 0),
    ("memory_budget", float("inf")), ("batch_size", 1.5), ("batch_size", 0),
    ("batch_size", True), ("batch_size", "8"),
])
def test_numeric_options_are_validated(option, value):
    """Before: a negative or NaN budget and ``batch_size=1.5`` were accepted."""
    with pytest.raises(ValueError, match=option):
        GeomFeaturizer(**{option: value})


def test_integral_numpy_batch_sizes_are_fine():
    assert GeomFeaturizer(batch_size=np.int64(8)).batch_size == 8


@pytest.mark.parametrize("value", ["nan", "-1", "0", "inf", "x"])
def test_command_line_memory_budget_is_validated(value, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["embed", "a.xtc", "b.pdb", "-o", "o.npy", "--memory-budget", value])
    assert stop.value.code == 2
    assert "expected a positive number" in capsys.readouterr().err
