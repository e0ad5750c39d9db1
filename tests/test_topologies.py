"""Right atoms, right elements, on MDAnalysis's own test topologies (MDAnalysisTests 2.11).

Every expectation below was checked by hand: counts against the atomic numbers the GROMACS TPR
stores (cobrotoxin, adk), residue by residue for the rest (see docs/conventions.md for the
table these tests pin down).
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import mdtraj as md
import numpy as np
import pytest
from conftest import IN_CI

from geomfeat import GeomFeaturizer, InputError
from geomfeat.cli import main
from geomfeat.elements import table_element
from geomfeat.errors import InputWarning
from geomfeat.trajectory import open_trajectory

try:
    from MDAnalysisTests import datafiles as D
except ImportError:  # the 'test' extra installs it; CI must not skip
    if IN_CI:
        raise
    pytest.skip("MDAnalysisTests is not installed (pip install '.[test]')",
                allow_module_level=True)


def universe(*files):
    import MDAnalysis as mda

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mda.Universe(*map(str, files))


def mdtraj_load(traj, top=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return md.load(str(traj), top=None if top is None else str(top))


def reader(obj, select="all", **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)
        return open_trajectory(obj, select, **kwargs)


def counts(obj, select="all", **kwargs) -> dict:
    r = reader(obj, select, **kwargs)
    return {**r.summary()["elements"], "virtual": r.summary()["dropped"]["virtual_sites"]}


ADK_PROTEIN = {"H": 1685, "C": 1040, "N": 289, "O": 320, "S": 7}
#: cobrotoxin: the TPR's atomic numbers; 4,612 TIP4P waters each with a massless MW site
COBROTOXIN = {"H": 9662, "C": 277, "N": 97, "O": 4710, "Na": 8, "S": 8, "Cl": 11,
              "virtual": 4612}


@pytest.fixture(scope="module")
def adk_hmr(tmp_path_factory):
    """adk.psf with hydrogen mass repartitioning: H 3.024 amu, heavy atoms 2.016 amu lighter."""
    path = tmp_path_factory.mktemp("hmr") / "adk_hmr.psf"
    lines = open(D.PSF).read().splitlines()
    start = next(i for i, line in enumerate(lines) if "!NATOM" in line)
    n_atoms = int(lines[start].split()[0])
    for i in range(start + 1, start + 1 + n_atoms):
        fields = lines[i].split()
        mass = float(fields[7])
        new = 3.024 if fields[4].startswith("H") else mass - 2.016
        lines[i] = lines[i].replace(fields[7], f"{new:.4f}".rjust(len(fields[7])), 1)
    path.write_text("\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------------------- elements per file
def test_adk_psf_with_repartitioned_hydrogen_masses(adk_hmr):
    u = universe(adk_hmr, D.DCD)
    assert u.atoms.masses[1] == pytest.approx(3.024)  # the file really is repartitioned
    assert counts(u) == {**ADK_PROTEIN, "virtual": 0}
    traj = mdtraj_load(D.DCD, adk_hmr)[:2]
    assert counts(traj) == {**ADK_PROTEIN, "virtual": 0}  # not mdtraj's He/B/C mass guesses
    assert reader(traj, "heavy").n_atoms == reader(u, "heavy").n_atoms == 1656


def test_adk_gromacs_tpr_and_gro_tip4p():
    tpr = universe(D.TPR, D.XTC)
    gro = universe(D.GRO)
    expected = {"H": 23853, "C": 1040, "N": 289, "O": 11404, "Na": 4, "S": 7, "virtual": 11084}
    assert counts(tpr) == counts(gro) == expected
    assert counts(mdtraj_load(D.GRO)) == expected
    assert reader(gro, "solute", heavy=True).summary()["elements"] == {
        k: v for k, v in ADK_PROTEIN.items() if k != "H"}


def test_cobrotoxin_tpr_and_pdb_agree_and_drop_tip4p_sites():
    tpr, pdb = universe(D.TPR_xvf, D.TRR_xvf), universe(D.PDB_xvf)
    assert counts(tpr) == counts(pdb) == counts(mdtraj_load(D.PDB_xvf)) == COBROTOXIN
    with pytest.warns(InputWarning, match=r"4612 virtual site.*SOL:MW ×4612"):
        heavy = open_trajectory(tpr, "heavy")
    assert heavy.n_atoms == 5111  # not 9,723: no second 'oxygen' per water
    assert reader(tpr, "solute", heavy=True).n_atoms == 480


def test_sin_psf_silicon_nitride_and_charmm_ions():
    expected = {"H": 2458, "N": 1012, "O": 1229, "Si": 746, "Cl": 50, "K": 50, "virtual": 0}
    assert counts(universe(D.PSF_NAMD_TRICLINIC, D.DCD_NAMD_TRICLINIC)) == expected
    assert counts(mdtraj_load(D.DCD_NAMD_TRICLINIC, D.PSF_NAMD_TRICLINIC)) == expected


def test_bala_prmtop_without_atomic_numbers():
    expected = {"H": 1766, "C": 15, "N": 3, "O": 876, "Na": 1, "virtual": 0}
    assert counts(universe(D.PRMncdf, D.NCDF)) == expected
    assert counts(mdtraj_load(D.NCDF, D.PRMncdf)) == expected
    with pytest.warns(InputWarning, match="includes 871 water and ion atom"):
        open_trajectory(universe(D.PRMncdf, D.NCDF), "heavy")
    assert reader(universe(D.PRMncdf, D.NCDF), "solute", heavy=True).n_atoms == 24


def test_4e43_keeps_the_first_altloc_on_both_paths():
    u = universe(D.PDB_full)
    traj = mdtraj_load(D.PDB_full)
    with pytest.warns(InputWarning, match="34 atom"):
        ours = open_trajectory(u, "all", heavy=False)
    theirs = reader(traj)
    assert ours.n_atoms == theirs.n_atoms == 1843 and ours.summary()["dropped"]["altlocs"] == 34
    assert ours.summary()["elements"] == {"C": 1057, "N": 272, "O": 501, "S": 13}
    np.testing.assert_array_equal(ours.atomic_numbers, theirs.atomic_numbers)
    np.testing.assert_allclose(next(ours.iter_batches(1, range(1))).positions,
                               next(theirs.iter_batches(1, range(1))).positions, atol=1e-3)


def test_5a7u_zinc_from_the_element_column():
    assert counts(universe(D.PDB_CRYOEM_BOX)) == {"H": 231, "C": 140, "N": 47, "O": 34, "S": 2,
                                                  "Zn": 1, "virtual": 0}


def test_tip5p_lone_pairs_are_virtual_sites():
    itp = universe(D.ITP_tip5p)  # MDAnalysis guesses 'O' for all five from the types
    r = reader(itp)
    assert r.atomic_numbers.tolist() == [8, 1, 1] and r.summary()["dropped"]["virtual_sites"] == 2


def test_martini_beads_are_refused_naming_them():
    for obj in (universe(D.Martini_membrane_gro), mdtraj_load(D.Martini_membrane_gro)):
        for select in ("all", "heavy"):
            with pytest.raises(InputError, match=r"coarse-grained beads .*DPPC:NC3 ×360") as info:
                reader(obj, select)
            assert "\n" not in str(info.value)


def test_multiframe_gro_is_read_in_full():
    u = universe(D.two_water_gro_multiframe)
    assert u.trajectory.n_frames == 1  # MDAnalysis's own reader stops after the first frame
    ours = reader(u)
    theirs = reader(mdtraj_load(D.two_water_gro_multiframe))
    assert ours.n_frames_total == theirs.n_frames_total == 2
    a = next(ours.iter_batches(2, range(2)))
    b = next(theirs.iter_batches(2, range(2)))
    np.testing.assert_allclose(a.positions, b.positions, atol=1e-4)
    np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-4)


@pytest.mark.parametrize("resname, name, symbol", [
    ("ATP", "N1A", "N"), ("NAD", "N6A", "N"), ("FAD", "N9A", "N"), ("LIG", "C1L", "C"),
    ("LIG", "C2L", "C"), ("CA", "CA", "Ca"), ("CAL", "CAL", "Ca"), ("MN", "MN", "Mn"),
    ("NA", "NA", "Na"), ("SOD", "SOD", "Na"), ("Na+", "Na+", "Na"), ("CL", "CL", "Cl"),
    ("CLA", "CLA", "Cl"), ("POT", "POT", "K"), ("SIN", "SIA", "Si"), ("ALA", "CA", "C"),
    ("ILE", "2HG2", "H"), ("HEM", "FE", "Fe"), ("HEM", "NA", "N"), ("MSE", "SE", "Se"),
    ("LIG", "CL1", "Cl"), ("DA", "OP1", "O"),
])
def test_name_table(resname, name, symbol):
    from geomfeat.elements import ATOM, atomic_number

    assert table_element(resname, name)[:2] == (ATOM, atomic_number(symbol))


@pytest.mark.parametrize("resname, name", [("SOL", "MW"), ("TIP5", "LP1"), ("SOL", "LP2"),
                                           ("WAT", "EPW"), ("LIG", "DM1"), ("LIG", "EP1")])
def test_dummy_names_are_virtual(resname, name):
    from geomfeat.elements import VIRTUAL

    assert table_element(resname, name)[0] == VIRTUAL


def test_unknown_names_are_an_error_not_a_guess():
    from geomfeat.elements import UNRESOLVED

    assert table_element("ZN", "ZND")[0] == UNRESOLVED  # a cationic dummy atom, not nitrogen


# ----------------------------------------------------------------------------- errors, overrides
def test_lammps_data_needs_elements_by_type(tmp_path):
    u = universe(D.LAMMPSdata)
    with pytest.raises(InputError, match="no atom names and no elements"):
        reader(u)
    spec = tmp_path / "elements.txt"
    spec.write_text("# LAMMPS types of datatest.data\ntype:1 H\ntype:2 H\ntype:3 C\n"
                    "type:4 C\ntype:5 N\ntype:6 O\n")
    r = reader(u, "type 1 2 3 4 5 6", elements=spec)
    assert r.summary()["elements"] == {"H": 10656, "C": 5784, "N": 960, "O": 960}
    with pytest.raises(InputError, match=r"no element could be resolved: type:7"):
        reader(u, "all", elements=spec)


def test_override_per_atom_and_by_name():
    u = universe(D.PDB_CRYOEM_BOX)
    z = reader(u).atomic_numbers
    per_atom = ["Zn" if v == 30 else int(v) for v in z]
    assert np.array_equal(reader(u, elements=per_atom).atomic_numbers, z)
    assert reader(u, elements={"ZN:ZN": "virtual"}).summary()["elements"].get("Zn") is None
    with pytest.raises(InputError, match="454 entries but"):
        reader(u, elements=per_atom[:-1])


def test_override_keys_most_specific_wins(tmp_path):
    from geomfeat.elements import (
        ATOM,
        VIRTUAL,
        ElementOverride,
        read_elements_file,
        resolve_elements,
    )

    spec = tmp_path / "elements.txt"
    spec.write_text("ZN Zn   # any atom named ZN\nLIG:ZN 0\nX virtual\ntype:7 8\n")
    table = read_elements_file(spec)
    assert table == {"ZN": 30, "LIG:ZN": -1, "X": -1, "type:7": 8}
    res = resolve_elements(["ZN", "ZN", "X", "Q"], ["ZN", "LIG", "LIG", "LIG"],
                           np.array([0, 1, 1, 1]), types=["1", "1", "1", "7"],
                           override=ElementOverride.from_user(spec))
    assert res.z.tolist() == [30, 0, 0, 8]
    assert res.kind.tolist() == [ATOM, VIRTUAL, VIRTUAL, ATOM]


@pytest.mark.parametrize("load", [lambda: universe(D.PRMncdf, D.NCDF),
                                  lambda: mdtraj_load(D.NCDF, D.PRMncdf)])
def test_broken_selection_is_one_line_naming_it(load):
    with pytest.raises(InputError) as info:
        reader(load(), "protein and (")
    message = str(info.value)
    assert "'protein and ('" in message and "ends too early" in message and "\n" not in message


def test_heavy_modifier_works_without_topology_elements():
    u = universe(D.PRMncdf, D.NCDF)  # no element attribute: 'element H' would fail here
    assert not hasattr(u.atoms, "elements")
    r = reader(u, "protein", heavy=True)
    assert r.n_atoms == 24 and 1 not in r.atomic_numbers


def test_model_element_set_refuses_zinc_unless_allowed():
    u = universe(D.PDB_CRYOEM_BOX)
    with pytest.raises(InputError, match=r"are Zn, outside visnet-denali's pre-training "
                                         r"elements .*ZN.*allow_unseen_elements"):
        GeomFeaturizer(select="heavy").reader(u)
    r = GeomFeaturizer(select="heavy", allow_unseen_elements=True).reader(u)
    assert r.summary()["unseen_elements"] == ["Zn"]


# ----------------------------------------------------------------------------- embeddings
def test_both_paths_embed_the_same(weights_url):
    featurizer = GeomFeaturizer(select="solute", heavy=True, batch_size=2)
    a = featurizer.transform(universe(D.PRMncdf, D.NCDF), stop=2)
    b = featurizer.transform(mdtraj_load(D.NCDF, D.PRMncdf)[:2])
    assert a.shape == (2, 64) and np.abs(a - b).max() <= 1e-4
    water = GeomFeaturizer(select="all")  # both frames of the GRO on both paths
    a = water.transform(universe(D.two_water_gro_multiframe))
    b = water.transform(mdtraj_load(D.two_water_gro_multiframe))
    assert a.shape == (2, 64) and np.abs(a - b).max() <= 1e-4 and np.abs(a[0] - a[1]).max() > 0.01


def test_lone_pdb_crystal_cell_is_not_a_box(weights_url):
    u = universe(D.PDB_xsmall)
    assert u.dimensions is not None
    with pytest.warns(InputWarning, match="CRYST1"):
        r = GeomFeaturizer().reader(u)
    assert r.summary()["box"].startswith("ignored") and next(r.iter_batches(1, range(1))).boxes \
        is None


# ----------------------------------------------------------------------------- command line
def test_cli_sidecar_lists_elements_and_what_was_left_out(tmp_path, capsys, weights_url):
    out = tmp_path / "bala.npy"
    code = main(["embed", D.NCDF, D.PRMncdf, "-o", str(out), "--select", "protein", "--heavy",
                 "--stop", "2", "-q"])
    assert code == 0, capsys.readouterr().err
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["elements"] == {"C": 15, "N": 3, "O": 6} and sidecar["heavy"] is True
    assert sidecar["dropped"] == {"virtual_sites": 0, "altlocs": 0}
    assert sidecar["unseen_elements"] == [] and sidecar["box"] == "trajectory"


@pytest.mark.parametrize("args, words", [
    ([D.Martini_membrane_gro, D.Martini_membrane_gro], "coarse-grained beads"),
    ([D.NCDF, D.PRMncdf, "--select", "protein and ("], "'protein and (' "),
    ([D.PDB_CRYOEM_BOX, D.PDB_CRYOEM_BOX], "outside visnet-denali's pre-training elements"),
    ([D.PDB_CRYOEM_BOX, D.PDB_CRYOEM_BOX, "--elements", "missing.txt"],
     "cannot read elements file missing.txt"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, args, words):
    code = main(["embed", *args, "-o", str(tmp_path / "e.npy"), "-q"])
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if line.startswith("geomfeat: error: ")]
    # one error line; anything else is a one-line warning (e.g. 5a7u's Zn is also an ion)
    assert code == 1 and len(errors) == 1 and words in errors[0], lines
    assert all(line.startswith("geomfeat: warning: ") for line in lines if line not in errors)


def test_cli_elements_file_format_errors_name_the_line(tmp_path, capsys):
    spec = tmp_path / "elements.txt"
    spec.write_text("ZN Zn\nHEM:FE\n")
    code = main(["embed", D.PDB_CRYOEM_BOX, D.PDB_CRYOEM_BOX, "-o", str(tmp_path / "e.npy"),
                 "--elements", str(spec)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and f"{spec}:2: expected 'KEY ELEMENT'" in err and "\n" not in err


def test_cli_lammps_data_is_one_line_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "geomfeat", "embed", D.LAMMPSdata,
                             D.LAMMPSdata, "-o", str(tmp_path / "e.npy"), "-q"],
                            capture_output=True, text=True)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no atom names and no elements" in lines[0], result.stderr
