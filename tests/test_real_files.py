"""Files as MD tools write them: the same box and the same atoms on both toolkit paths.

Issue 18 (part A). Each case builds its file here, reads it as an ``mdtraj.Trajectory`` and as
an MDAnalysis ``Universe`` (and with ``geomfeat embed``), and checks that the two paths embed
the same atoms with the same elements and the same use of the unit cell, and that the
sidecar says it.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import MDAnalysis as mda
import mdtraj as md
import numpy as np
import pytest

from geomfeat import GeomFeaturizer, InputError
from geomfeat.cli import main
from geomfeat.errors import InputWarning
from geomfeat.trajectory import open_trajectory

BOX_NM = np.diag([2.0, 2.1, 2.2])  # wider than twice the 7.5 Å cutoff


def universe(*files) -> mda.Universe:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mda.Universe(*map(str, files))


def embed(tmp_path: Path, name: str, *args: str) -> tuple[int, np.ndarray | None, dict | None]:
    """``geomfeat embed ARGS -o NAME.npy -q``: (exit status, output, sidecar)."""
    out = tmp_path / f"{name}.npy"
    code = main(["embed", *args, "-o", str(out), "-q"])
    if code != 0:
        return code, None, None
    return code, np.load(out), json.loads(out.with_suffix(".json").read_text())


@pytest.fixture(scope="module")
def split(example_files) -> md.Trajectory:
    """Three frames of the example moved onto the corner of a box and wrapped into it."""
    xtc, pdb = example_files
    traj = md.load(xtc, top=pdb)[:3]
    xyz = traj.xyz - traj.xyz.mean(1, keepdims=True) + BOX_NM.sum(0)
    traj.xyz = (xyz % np.diag(BOX_NM)).astype(np.float32)
    traj.unitcell_vectors = np.repeat(BOX_NM[None], 3, 0).astype(np.float32)
    assert np.ptp(traj.xyz[0], axis=0).min() > 1.0, "the molecule must be split by the box"
    return traj


# ------------------------------------------------------------------ 1. boxes the files store
def test_a_multi_model_pdb_with_one_cryst1_before_model_1_uses_it_on_both_paths(
        split, tmp_path, weights_url):
    """Before: MDAnalysis (and the command line) read no cell, the sidecar said "none"."""
    pdb = tmp_path / "boxed.pdb"
    split.save_pdb(str(pdb))  # CRYST1 once, then MODEL 0..2 (what MD tools write)
    lines = pdb.read_text().splitlines()
    assert [ln[:6] for ln in lines if ln[:6] in ("CRYST1", "MODEL ")][:2] == ["CRYST1", "MODEL "]
    featurizer = GeomFeaturizer(select="all")
    theirs, ours = featurizer.reader(md.load(str(pdb))), featurizer.reader(universe(pdb))
    assert theirs.box == ours.box == "trajectory"
    assert theirs.atomic_numbers.tolist() == ours.atomic_numbers.tolist()
    box = next(ours.iter_batches(3, range(3))).boxes
    np.testing.assert_allclose(box, np.repeat(BOX_NM[None] * 10, 3, 0), atol=1e-3)
    with_mdtraj = featurizer.transform(md.load(str(pdb)))
    with_mdanalysis = featurizer.transform(universe(pdb))
    np.testing.assert_allclose(with_mdanalysis, with_mdtraj, atol=1e-4)
    code, cli, sidecar = embed(tmp_path, "pdb", str(pdb), str(pdb), "--select", "all")
    assert code == 0 and sidecar["box"] == "trajectory"
    np.testing.assert_allclose(cli, with_mdtraj, atol=1e-4)
    no_box = GeomFeaturizer(select="all", pbc=False).transform(universe(pdb))
    assert np.abs(no_box - with_mdtraj).max() > 1e-2  # the cell really matters here


def test_an_amber_restart_box_is_used_on_both_paths_and_rst7_opens(split, example_files,
                                                                   tmp_path, weights_url,
                                                                   capsys):
    """Before: MDAnalysis ignored the box line silently; the command line refused .rst7."""
    _, top = example_files
    rst7, inpcrd = tmp_path / "boxed.rst7", tmp_path / "boxed.inpcrd"
    split[0].save_amberrst7(str(rst7))
    inpcrd.write_bytes(rst7.read_bytes())
    featurizer = GeomFeaturizer(select="all")
    with pytest.warns(InputWarning, match="one frame with a unit cell"):
        with_mdtraj = featurizer.transform(md.load(str(rst7), top=str(top)))
    ours = featurizer.reader(universe(top, inpcrd))
    assert ours.box == "trajectory" and ours.n_atoms == 22
    np.testing.assert_allclose(next(ours.iter_batches(1, range(1))).boxes[0], BOX_NM * 10,
                               atol=1e-5)
    np.testing.assert_allclose(featurizer.transform(universe(top, inpcrd)), with_mdtraj,
                               atol=1e-4)
    for path in (rst7, inpcrd):
        code, cli, sidecar = embed(tmp_path, path.suffix[1:], str(path), str(top),
                                   "--select", "all")
        assert code == 0, capsys.readouterr().err
        assert sidecar["box"] == "trajectory" and sidecar["n_atoms"] == 22
        np.testing.assert_allclose(cli, with_mdtraj, atol=1e-4)


def test_an_amber_restart_with_velocities_has_its_box_on_the_last_line(split, tmp_path):
    from geomfeat.formats import amber_restart_cell

    rst7 = tmp_path / "v.rst7"
    split[0].save_amberrst7(str(rst7))
    head, coordinates, box = (lambda ls: (ls[:2], ls[2:-1], ls[-1:]))(
        rst7.read_text().splitlines())
    assert len(coordinates) == 11  # 22 atoms, two a line
    with_velocities = tmp_path / "vb.rst7"
    with_velocities.write_text("\n".join(head + coordinates + coordinates + box) + "\n")
    np.testing.assert_allclose(amber_restart_cell(with_velocities), BOX_NM * 10, atol=1e-6)
    without_box = tmp_path / "v-nobox.rst7"
    without_box.write_text("\n".join(head + coordinates + coordinates) + "\n")
    assert amber_restart_cell(without_box) is None
    broken = tmp_path / "broken.rst7"
    broken.write_text("\n".join(head + coordinates[:5]) + "\n")
    with pytest.raises(InputError, match="7 lines do not fit an Amber restart of 22 atoms"):
        amber_restart_cell(broken)


def test_an_amber_netcdf_restart_is_one_line_saying_why(split, example_files, tmp_path,
                                                       capsys):
    _, top = example_files
    restart = tmp_path / "n.ncrst"
    split[0].save_netcdfrst(str(restart))
    renamed = tmp_path / "n.rst7"  # pmemd writes NetCDF restarts under any name
    renamed.write_bytes(restart.read_bytes())
    assert md.load(str(restart), top=str(top)).unitcell_vectors is not None  # mdtraj: .ncrst
    code, _, _ = embed(tmp_path, "nc", str(renamed), str(top))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert f"{renamed} is an Amber NetCDF restart, which MDAnalysis cannot read" in err[0]


def test_cryst1_records_in_some_models_only_are_refused_in_one_line(split, tmp_path, capsys):
    """Before: MDAnalysis read no cell for any model, mdtraj the last one for all."""
    pdb = tmp_path / "mixed.pdb"
    split.save_pdb(str(pdb))
    lines = pdb.read_text().splitlines()
    models = [i for i, ln in enumerate(lines) if ln.startswith("MODEL")]
    cell = lines.pop(1)  # the header CRYST1 goes into models 0 and 1 only
    for i in reversed(models[:2]):
        lines.insert(i, cell)
    pdb.write_text("\n".join(lines) + "\n")
    message = f"{pdb} has CRYST1 records for 2 of its 3 models"
    with pytest.raises(InputError, match=message):
        open_trajectory(universe(pdb))
    code, _, _ = embed(tmp_path, "mixed", str(pdb), str(pdb))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and message in err[0]


def test_a_placeholder_cell_in_every_model_is_ignored_on_both_paths(example_files, tmp_path,
                                                                    weights_url):
    """Before: MDAnalysis used a 2.5 Å cell that mdtraj discards (1408 atoms/nm³)."""
    xtc, pdb = example_files
    traj = md.load(str(xtc), top=str(pdb))[:3]
    traj.unitcell_vectors = np.repeat(np.eye(3)[None] * 0.25, 3, 0).astype(np.float32)
    path = tmp_path / "dummy.pdb"
    traj.save_pdb(str(path))
    lines = path.read_text().splitlines()
    cell = lines.pop(1)
    for i in reversed([i for i, ln in enumerate(lines) if ln.startswith("MODEL")]):
        lines.insert(i + 1, cell)  # a CRYST1 in every model
    path.write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match="Discarding unit cell"):
        theirs = md.load(str(path))
    assert theirs.unitcell_vectors is None
    featurizer = GeomFeaturizer()
    with pytest.warns(InputWarning, match="the CRYST1 cell holds 1408 atoms per nm³"):
        ours = featurizer.reader(universe(path))
    assert ours.box.startswith("ignored: CRYST1 cell of 1408 atoms/nm³")
    np.testing.assert_allclose(featurizer.transform(universe(path)),
                               featurizer.transform(theirs), atol=1e-4)


def test_a_frame_without_the_cell_of_the_others_is_named_on_both_paths(split, example_files,
                                                                      tmp_path, weights_url):
    """Before: the MDAnalysis path embedded that frame's batch without a box, silently."""
    _, top = example_files
    dcd = tmp_path / "gap.dcd"
    u = universe(top)
    with mda.Writer(str(dcd), n_atoms=22) as writer, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "No dimensions set for current frame"
        for k in range(3):
            u.atoms.positions = split.xyz[k] * 10.0
            u.dimensions = [20.0, 21.0, 22.0, 90.0, 90.0, 90.0] if k < 2 else None
            writer.write(u.atoms)
    with pytest.raises(InputError, match=r"frame 2 of DCDReader .*gap.dcd .*no cell for this "
                                         r"frame, though the file has one"):
        GeomFeaturizer(select="all", batch_size=3).transform(universe(top, dcd))
    with pytest.raises(InputError, match=r"frame 2 of mdtraj.Trajectory .* non-finite"):
        GeomFeaturizer(select="all", batch_size=3).transform(md.load(str(dcd), top=str(top)))
    from geomfeat.mdanalysis import GeomEmbedding

    with pytest.raises(InputError, match=r"frame 2 of DCDReader .*no cell for this frame"):
        GeomEmbedding(universe(top, dcd).atoms, batch_size=3).run()
    no_pbc = GeomFeaturizer(select="all", pbc=False)
    np.testing.assert_allclose(no_pbc.transform(universe(top, dcd)),
                               no_pbc.transform(md.load(str(dcd), top=str(top))), atol=1e-4)


# --------------------------------------------------- 2. different residues at one position
ILE = {"N": (0.0, 0.0, 0.0), "CA": (1.46, 0.0, 0.0), "C": (2.0, 1.42, 0.0),
       "O": (1.3, 2.4, 0.0), "CB": (2.0, -0.8, 1.2), "CG1": (3.5, -0.8, 1.3),
       "CG2": (1.4, -2.2, 1.2), "CD1": (4.1, -1.6, 2.4)}
LEU = {"N": (0.0, 0.0, 0.0), "CA": (1.46, 0.0, 0.0), "C": (2.0, 1.42, 0.0),
       "O": (1.3, 2.4, 0.0), "CB": (2.0, -0.8, 1.2), "CG": (2.6, -2.2, 1.6),
       "CD1": (2.4, -3.1, 0.4), "CD2": (4.1, -2.1, 1.9)}


def _microheterogeneous_pdb(path: Path) -> Path:
    """Residue 2 is ILE in altlocs A and B and LEU in altloc C (as in wwPDB entries)."""
    lines = []

    def atom(name: str, alt: str, resname: str, xyz, occupancy: float) -> None:
        lines.append(f"ATOM  {len(lines) + 1:5d} {name:<4s}{alt}{resname} A   2    "
                     f"{xyz[0]:8.3f}{xyz[1]:8.3f}{xyz[2]:8.3f}{occupancy:6.2f} 10.00"
                     f"          {name[0]:>2s}")

    for name, xyz in ILE.items():
        atom(name, "A", "ILE", xyz, 0.4)
        atom(name, "B", "ILE", tuple(v + 0.3 for v in xyz), 0.3)
    for name, xyz in LEU.items():
        atom(name, "C", "LEU", xyz, 0.3)
    path.write_text("\n".join(lines) + "\nEND\n")
    return path


def test_alternate_residues_at_one_position_keep_mdtrajs_atoms_on_both_paths(
        tmp_path, weights_url, capsys):
    """Before: MDAnalysis kept ILE (A) and LEU (C), 16 atoms, five of them at the same places,
    and the warning counted 8 atoms left out."""
    pdb = _microheterogeneous_pdb(tmp_path / "microhet.pdb")
    theirs = open_trajectory(md.load(str(pdb)), "all")
    with pytest.warns(InputWarning) as caught:
        ours = open_trajectory(universe(pdb), "all")
    messages = [str(w.message) for w in caught]
    assert any("14 atom(s) of other alternate locations" in m for m in messages)
    assert any("ILE2 (A, B) / LEU2 (C): LEU's CG, CD2 kept" in m for m in messages)
    assert ours.n_atoms == theirs.n_atoms == 10
    assert ours.atomic_numbers.tolist() == theirs.atomic_numbers.tolist() == [7] + [6] * 2 + \
        [8] + [6] * 6
    assert ours.residue_labels == theirs.residue_labels == ["ILE2"]
    ours_xyz = next(ours.iter_batches(1, range(1))).positions
    theirs_xyz = next(theirs.iter_batches(1, range(1))).positions
    np.testing.assert_allclose(ours_xyz, theirs_xyz, atol=1e-4)
    assert ours.summary()["dropped"]["altlocs"] == 14
    featurizer = GeomFeaturizer(pool="residue")
    np.testing.assert_allclose(featurizer.transform(universe(pdb)),
                               featurizer.transform(md.load(str(pdb))), atol=1e-4)
    code, _, sidecar = embed(tmp_path, "microhet", str(pdb), str(pdb))
    assert code == 0
    assert sidecar["n_atoms"] == 10 and sidecar["n_residues"] == 1
    assert sidecar["elements"] == {"C": 8, "N": 1, "O": 1}
    assert sidecar["dropped"] == {"virtual_sites": 0, "altlocs": 14}
    assert "nm" not in capsys.readouterr().err  # the unit check has nothing to blame


# --------------------------------------------------------------- 8. multi-molecule mol2
def _mol2(molecules: list[tuple[str, list[tuple[str, str, float]]]]) -> str:
    text = ""
    for k, (name, atoms) in enumerate(molecules):
        text += (f"@<TRIPOS>MOLECULE\n{name}\n {len(atoms)} {len(atoms) - 1} 1 0 0\nSMALL\n"
                 "USER_CHARGES\n\n@<TRIPOS>ATOM\n")
        for i, (atom, sybyl, x) in enumerate(atoms, 1):
            text += (f"{i:7d} {atom:<4s} {x + 10.0 * k:10.4f} {0.1 * i:10.4f} {0.0:10.4f} "
                     f"{sybyl:<5s} 1 MOL 0.0000\n")
        text += "@<TRIPOS>BOND\n" + "".join(f"{i:6d} {i} {i + 1} 1\n"
                                            for i in range(1, len(atoms)))
    return text


ETHANOL = [("C1", "C.3", 0.0), ("C2", "C.3", 1.54), ("O1", "O.3", 2.97)]
OTHER = [("N1", "N.3", 0.0), ("C2", "C.3", 1.47), ("S1", "S.3", 3.27)]


def test_a_mol2_of_different_molecules_is_refused_in_one_line(tmp_path, capsys):
    """Before: MDAnalysis gave the second molecule the first one's elements (C C O for
    N C S), mdtraj read only the second."""
    path = tmp_path / "two.mol2"
    path.write_text(_mol2([("first", ETHANOL), ("second", OTHER)]))
    with pytest.raises(InputError, match=r"two.mol2 holds 2 molecules with different atoms "
                                         r"\(molecule 2 'second': 3 atoms N1:N.3"):
        open_trajectory(universe(path))
    code, _, _ = embed(tmp_path, "two", str(path), str(path))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "give one molecule per file" in err[0]


def test_a_mol2_of_one_molecules_poses_is_read_as_frames(tmp_path):
    path = tmp_path / "poses.mol2"
    path.write_text(_mol2([("pose1", ETHANOL), ("pose2", ETHANOL)]))
    reader = open_trajectory(universe(path), "all")
    assert reader.n_frames_total == 2 and reader.atomic_numbers.tolist() == [6, 6, 8]
    frames = np.concatenate([b.positions for b in reader.iter_batches(2, range(2))])
    assert frames[:, 0, 0].tolist() == [0.0, 10.0]  # the first molecule, then the second


def test_mdtraj_reads_the_last_pose_of_a_mol2_as_mdanalysis_its_last_frame(tmp_path,
                                                                           weights_url):
    pytest.importorskip("pandas")  # mdtraj's load_mol2 needs it
    path = tmp_path / "poses.mol2"
    path.write_text(_mol2([("pose1", ETHANOL), ("pose2", ETHANOL)]))
    last = md.load(str(path))  # mdtraj reads the last molecule only
    featurizer = GeomFeaturizer(select="all", check_units=False)
    np.testing.assert_allclose(featurizer.transform(universe(path))[1:],
                               featurizer.transform(last), atol=1e-5)


# ------------------------------------------------------ 10. an XTC file cut inside a frame
@pytest.fixture()
def cut_xtc(example_files, tmp_path) -> Path:
    """41 frames of the example with the last 4 bytes cut off: frame 40 ends early.

    The issue's case, ``head -c 200000 examples/ala2/ala2.xtc`` (inside frame 1164), is the
    same on a shorter file.
    """
    xtc, pdb = example_files
    whole = tmp_path / "whole.xtc"
    md.load(str(xtc), top=str(pdb))[:41].save_xtc(str(whole))
    cut = tmp_path / "t.xtc"
    cut.write_bytes(whole.read_bytes()[:-4])
    return cut


CUT = (r"t.xtc ends inside frame 40 \(\d+ bytes of it; truncated\?\): using its 40 complete "
       r"frames")


def test_an_xtc_cut_inside_a_frame_embeds_its_complete_frames_and_says_so(
        cut_xtc, example_files, tmp_path, capsys, weights_url):
    """Before: exit 0 without a word, and the last of 41 rows was uninitialised memory."""
    xtc, pdb = example_files
    code, cli, sidecar = embed(tmp_path, "cut", str(cut_xtc), str(pdb))
    assert code == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.fullmatch(f"geomfeat: warning: .*{CUT}", err[0])
    assert cli.shape == (40, 64) and re.fullmatch(f".*{CUT}", sidecar["truncated"])
    assert sidecar["inputs"]["trajectory"]["frames"] == 40
    complete = md.load(str(xtc), top=str(pdb))[:40]
    np.testing.assert_allclose(cli, GeomFeaturizer().transform(complete), atol=1e-5)
    with pytest.warns(UserWarning, match=CUT):
        assert GeomFeaturizer().transform(universe(pdb, cut_xtc)).shape == (40, 64)
    with pytest.raises((OSError, RuntimeError), match="XTC read error"):
        md.load(str(cut_xtc), top=str(pdb))  # mdtraj refuses the file


def test_a_dcd_cut_inside_a_frame_says_so_on_the_mdanalysis_path(example_files, tmp_path,
                                                                  capsys, weights_url):
    """Before: both toolkits dropped the cut frame without a word."""
    xtc, pdb = example_files
    whole = md.load(str(xtc), top=str(pdb))[:5]
    dcd = tmp_path / "cut.dcd"
    whole.save_dcd(str(dcd))
    dcd.write_bytes(dcd.read_bytes()[:-150])  # frames are 288 bytes: 138 of frame 4 remain
    code, cli, sidecar = embed(tmp_path, "cutdcd", str(dcd), str(pdb))
    message = (f"{dcd} ends with 138 bytes that are not a complete frame (truncated?): using "
               "its 4 complete frames")
    assert code == 0 and f"geomfeat: warning: {message}" in capsys.readouterr().err
    assert cli.shape == (4, 64) and sidecar["truncated"] == message
    mdtraj_frames = md.load(str(dcd), top=str(pdb))
    assert mdtraj_frames.n_frames == 4  # mdtraj: the same frames, without a word
    np.testing.assert_allclose(cli, GeomFeaturizer().transform(mdtraj_frames), atol=1e-5)


def test_a_frame_that_cannot_be_read_is_an_error_never_a_row(cut_xtc, example_files):
    _, pdb = example_files
    with pytest.warns(UserWarning, match=CUT):
        reader = open_trajectory(universe(pdb, cut_xtc))
    reader._complete = None  # as if the cut frame were counted: it cannot be read
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MDAnalysis: "seek failed, recalculating offsets"
        with pytest.raises(InputError, match=r"frame 40 of XTCReader .*t.xtc .*cannot be "
                                             r"read \(XTC read error"):
            list(reader.iter_batches(100, range(30, 41)))  # MDAnalysis raises
        with pytest.raises(InputError, match=r"frame 40 of XTCReader .*t.xtc .*cannot be "
                                             r"read: the trajectory ends before it"):
            list(reader.iter_batches(100, range(41)))  # MDAnalysis stops without a word


def test_geomembedding_runs_over_the_complete_frames(cut_xtc, example_files, weights_url):
    """Before: MDAnalysis's own loop failed on the cut frame with an OSError."""
    from geomfeat.mdanalysis import GeomEmbedding

    _, pdb = example_files
    with pytest.warns(UserWarning, match=CUT):
        run = GeomEmbedding(universe(pdb, cut_xtc).atoms, heavy=True).run(start=36)
    assert run.results.embeddings.shape == (4, 64)


# ------------------------------------------------------------ 11. integer array positions
def test_integer_positions_are_coordinates(weights_url):
    """Before: a torch error about Long tensors."""
    rng = np.random.default_rng(0)
    z = np.array([6, 6, 8, 7, 6])
    positions = rng.integers(0, 8, size=(2, 5, 3)).astype(np.int64)
    featurizer = GeomFeaturizer(select="all", check_units=False)
    np.testing.assert_array_equal(featurizer.transform((positions, z)),
                                  featurizer.transform((positions.astype(np.float64), z)))
    with pytest.raises(InputError, match=r"positions must be real numbers .* dtype <U"):
        featurizer.transform((positions.astype(str), z))
