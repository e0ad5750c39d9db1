"""Right atoms and elements where one atom's name is not enough (issue 18, items 3–9).

Each case is a small file written here (PDB, GRO, PSF, HOOMD XML by hand, or a Topology built in
code), read on both toolkit paths — an MDAnalysis Universe and an mdtraj Trajectory — and, where
the command line matters, by ``geomfeat embed``. Both paths must give the same atoms and
elements; the MDAnalysis path, which knows which elements the file stores, also records the
ones that names overruled (``overruled_elements`` in the sidecar).
"""

from __future__ import annotations

import json
import warnings

import MDAnalysis as mda
import mdtraj as md
import numpy as np
import pytest
from conftest import IN_CI

from geomfeat import GeomFeaturizer, InputError
from geomfeat.cli import main
from geomfeat.elements import ATOM, VIRTUAL, resolve_elements
from geomfeat.errors import InputWarning
from geomfeat.trajectory import open_trajectory


# ----------------------------------------------------------------------------- writers
def write_pdb(path, atoms) -> str:
    """``atoms``: (name, resname, resid, x, y, z[, element]) in Å; element column if given."""
    lines = []
    for i, (name, res, resid, x, y, z, *elem) in enumerate(atoms, 1):
        padded = name if len(name) == 4 else f" {name:<3s}"
        element = f"{elem[0]:>2s}" if elem else "  "
        lines.append(f"HETATM{i:5d} {padded} {res:<4s}A{resid:4d}    {x:8.3f}{y:8.3f}{z:8.3f}"
                     f"  1.00  0.00          {element}")
    path.write_text("\n".join(lines) + "\nEND\n")
    return str(path)


def write_gro(path, atoms, box=5.0) -> str:
    """``atoms``: (name, resname, resid, x, y, z) in Å (written in nm)."""
    lines = ["built in a test", f"{len(atoms):5d}"]
    for i, (name, res, resid, x, y, z) in enumerate(atoms, 1):
        lines.append(f"{resid:5d}{res:<5s}{name:>5s}{i:5d}{x / 10:8.3f}{y / 10:8.3f}{z / 10:8.3f}")
    lines.append(f"{box:10.5f}{box:10.5f}{box:10.5f}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def write_psf(path, atoms) -> str:
    """``atoms``: (name, resname, resid, type, mass); one segment, no bonds."""
    lines = ["PSF", "", "       1 !NTITLE", " REMARKS built in a test", "",
             f"{len(atoms):8d} !NATOM"]
    for i, (name, res, resid, atype, mass) in enumerate(atoms, 1):
        lines.append(f"{i:8d} SYS  {resid:<4d} {res:<4s} {name:<4s} {atype:<4s}  0.000000 "
                     f"{mass:13.4f}           0")
    for section in ("NBOND: bonds", "NTHETA: angles", "NPHI: dihedrals", "NIMPHI: impropers",
                    "NDON: donors", "NACC: acceptors"):
        lines += ["", f"       0 !{section}"]
    path.write_text("\n".join(lines) + "\n\n")
    return str(path)


#: Ethanol (all atoms, Å): a solute next to the cases below.
ETHANOL = [("C1", "ETH", 1, 0.000, 0.000, 0.000), ("C2", "ETH", 1, 1.520, 0.000, 0.000),
           ("O1", "ETH", 1, 2.000, 1.350, 0.000), ("H11", "ETH", 1, -0.380, 1.020, 0.000),
           ("H12", "ETH", 1, -0.380, -0.510, 0.880), ("H13", "ETH", 1, -0.380, -0.510, -0.880),
           ("H21", "ETH", 1, 1.900, -0.510, 0.890), ("H22", "ETH", 1, 1.900, -0.510, -0.890),
           ("HO1", "ETH", 1, 2.950, 1.300, 0.000)]
#: Three alanines (heavy atoms, Å), with element columns.
ALA3 = [(name, "ALA", r + 1, x + 3.8 * r, y, z, e) for r in range(3) for name, x, y, z, e in
        (("N", 0.0, 0.0, 0.0, "N"), ("CA", 1.458, 0.0, 0.0, "C"), ("C", 2.009, 1.42, 0.0, "C"),
         ("O", 1.251, 2.390, 0.0, "O"), ("CB", 1.988, -0.773, 1.199, "C"))]


# ----------------------------------------------------------------------------- readers
def quiet(obj, select="all", **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return open_trajectory(obj, select, **kwargs)


def both_paths(top, traj=None, select="all", **kwargs):
    """Readers of the MDAnalysis and the mdtraj path of the same file(s)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = mda.Universe(top) if traj is None else mda.Universe(top, traj)
        t = md.load(top) if traj is None else md.load(traj, top=top)
    return quiet(u, select, **kwargs), quiet(t, select, **kwargs)


def agree(a, b) -> dict:
    """The elements and dropped counts both readers give (asserting they are the same)."""
    np.testing.assert_array_equal(a.atomic_numbers, b.atomic_numbers)
    assert a.summary()["elements"] == b.summary()["elements"]
    assert a.summary()["dropped"] == b.summary()["dropped"]
    return {**a.summary()["elements"], "virtual": a.summary()["dropped"]["virtual_sites"]}


def refusals(top, traj=None, select="all") -> list[str]:
    """The one-line errors of both paths."""
    messages = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for obj in (mda.Universe(top) if traj is None else mda.Universe(top, traj),
                    md.load(top) if traj is None else md.load(traj, top=top)):
            with pytest.raises(InputError) as info:
                open_trajectory(obj, select)
            assert "\n" not in str(info.value)
            messages.append(str(info.value))
    return messages


def cli(capsys, *args) -> tuple[int, list[str]]:
    code = main(["embed", *map(str, args), "-q"])
    return code, capsys.readouterr().err.strip().splitlines()


# ----------------------------------------------------------------------------- 3. CG geometry
def test_four_beads_without_martini_names_are_refused_on_both_paths(tmp_path, capsys):
    """C1–C4 beads 4.7 Å apart (a CG butane) are not four carbon atoms."""
    gro = write_gro(tmp_path / "cg4.gro", [(f"C{i + 1}", "BUT", 1, 4.7 * i, 0.3 * i, 0.0)
                                           for i in range(4)])
    for message in refusals(gro):
        assert "look like coarse-grained beads" in message and "BUT1:C1" in message
        assert "within 2.75 Å" in message and "4.7 Å" in message
    code, lines = cli(capsys, gro, gro, "-o", tmp_path / "e.npy")
    assert code == 1 and len(lines) == 1 and "coarse-grained beads" in lines[0], lines


def test_nucleotide_beads_named_like_atoms_are_refused(tmp_path):
    """A three-bead-per-nucleotide model (P, C4', N1 beads 3.5–6 Å apart) is not DNA."""
    beads = [(name, res, r + 1, 6.0 * r + dx, dy, 0.0) for r, res in enumerate(("DA", "DT", "DG"))
             for name, dx, dy in (("P", 0.0, 0.0), ("C4'", 1.5, 3.6), ("N1", 3.0, 7.4))]
    pdb = write_pdb(tmp_path / "cg_dna.pdb", beads)
    for message in refusals(pdb):
        assert "coarse-grained beads" in message and "DA1:P" in message


def test_giving_elements_skips_the_bead_check(tmp_path):
    gro = write_gro(tmp_path / "cg4.gro", [(f"C{i + 1}", "BUT", 1, 4.7 * i, 0.0, 0.0)
                                           for i in range(4)])
    a, b = both_paths(gro, elements={"BUT:C1": "C"})
    assert agree(a, b) == {"C": 4, "virtual": 0}


@pytest.mark.parametrize("case", ["heavy atoms only", "ion and ligand", "water box",
                                  "oxygen-only water", "lone atoms", "calcium ion", "iodine",
                                  "tiny molecules"])
def test_all_atom_structures_are_not_taken_for_beads(tmp_path, case):
    """Heavy-atom-only molecules, ions, water boxes, lone atoms and tiny molecules (I2: 2.67 Å)
    have no partner within 2.75 Å or have one for a reason; none of them is refused."""
    grid = [(4.0 * i, 4.0 * j, 4.0 * k) for i in range(3) for j in range(3) for k in range(3)]
    atoms = {
        "heavy atoms only": [a[:6] for a in ALA3] + [a for a in ETHANOL if a[0][0] != "H"],
        "ion and ligand": [*ETHANOL, ("NA", "NA", 2, 6.0, 0.0, 0.0),
                           ("CL", "CL", 3, -6.0, 0.0, 0.0)],
        "water box": [(n, "HOH", r + 1, x + dx, y + dy, z) for r, (x, y, z) in enumerate(grid)
                      for n, dx, dy in (("O", 0, 0), ("H1", 0.96, 0), ("H2", -0.24, 0.93))],
        "oxygen-only water": [("O", "WAT", r + 1, *xyz) for r, xyz in enumerate(grid)],
        "lone atoms": [("AR", "AR", r + 1, *xyz) for r, xyz in enumerate(grid[:5])]
        + [("C", "MTH", 9, 20.0, 0.0, 0.0), ("O", "OXY", 10, 25.0, 0.0, 0.0)],
        "calcium ion": [*ETHANOL, ("CA", "CA", 2, 6.0, 0.0, 0.0)],
        "iodine": [("I1", "DIO", 1, 0.0, 0.0, 0.0), ("I2", "DIO", 1, 2.67, 0.0, 0.0)],
        "tiny molecules": [("C", "CO2", 1, 0.0, 0.0, 0.0), ("O1", "CO2", 1, 1.16, 0.0, 0.0),
                           ("O2", "CO2", 1, -1.16, 0.0, 0.0), ("H1", "HYD", 2, 6.0, 0.0, 0.0),
                           ("H2", "HYD", 2, 6.74, 0.0, 0.0)],
    }[case]
    a, b = both_paths(write_pdb(tmp_path / "aa.pdb", atoms))
    assert a.n_atoms == b.n_atoms == len(atoms)
    agree(a, b)


def test_a_calpha_trace_is_refused(tmp_path):
    """One CA per residue 3.8 Å apart is a Cα model, neither carbon nor calcium atoms."""
    trace = [("CA", res, r + 1, 3.8 * r, 0.5 * (r % 2), 0.0)
             for r, res in enumerate(("MET", "GLN", "ILE", "PHE", "VAL"))]
    for message in refusals(write_pdb(tmp_path / "trace.pdb", trace)):
        assert "coarse-grained beads" in message and "MET1:CA" in message


# ----------------------------------------------------------------------------- 4. lone ions
def test_lone_metal_ions_are_their_element_and_refused_as_unseen(tmp_path, capsys):
    """PT, PB, PD, SN alone in their residues are Pt, Pb, Pd, Sn (not P and S), outside the
    model's elements: refused unless allowed, and all four are listed."""
    ions = [(n, n, i + 2, 6.0 * (i + 1), 0.0, 0.0) for i, n in enumerate(("PT", "PB", "PD", "SN"))]
    pdb = write_pdb(tmp_path / "ions.pdb", ETHANOL + ions)
    a, b = both_paths(pdb)
    assert agree(a, b) == {"H": 6, "C": 2, "O": 1, "Pd": 1, "Sn": 1, "Pt": 1, "Pb": 1,
                           "virtual": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for obj in (mda.Universe(pdb), md.load(pdb)):
            with pytest.raises(InputError, match=r"are Pd/Sn/Pt/Pb, outside visnet-denali"):
                GeomFeaturizer(select="all").reader(obj)
            allowed = GeomFeaturizer(select="all", allow_unseen_elements=True).reader(obj)
            assert allowed.summary()["unseen_elements"] == ["Pd", "Sn", "Pt", "Pb"]
    code, lines = cli(capsys, pdb, pdb, "-o", tmp_path / "e.npy")
    errors = [line for line in lines if line.startswith("geomfeat: error: ")]
    assert code == 1 and len(errors) == 1 and "Pd/Sn/Pt/Pb" in errors[0], lines


def test_lone_ions_written_back_by_mdtraj_keep_their_element(tmp_path):
    """mdtraj reads PT as P (and a lone CA as C) and writes that into the element column: the
    names still win."""
    ions = [(n, n, i + 2, 6.0 * (i + 1), 0.0, 0.0) for i, n in enumerate(("PT", "SN", "CA"))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        md.load(write_pdb(tmp_path / "ions.pdb", ETHANOL + ions)).save_pdb(
            str(tmp_path / "written.pdb"))
    written = str(tmp_path / "written.pdb")
    assert list(mda.Universe(written).atoms.elements[-3:]) == ["P", "S", "C"]
    a, b = both_paths(written)
    assert agree(a, b) == {"H": 6, "C": 2, "O": 1, "Ca": 1, "Sn": 1, "Pt": 1, "virtual": 0}
    assert a.summary()["overruled_elements"] == {"PT:PT P → Pt": 1, "SN:SN S → Sn": 1,
                                                 "CA:CA C → Ca": 1}


# ----------------------------------------------------------------------------- 5. element column
def test_protein_names_win_over_a_calcium_element_column(tmp_path, capsys, weights_url):
    """Cα marked ``CA`` (calcium) in the element column stays carbon, with a warning and a
    sidecar entry; the unseen elements (Zn, Nb) are all listed."""
    atoms = [(*a[:6], "CA" if a[0] == "CA" else a[6]) for a in ALA3]
    atoms += [("ZN", "ZN", 4, 12.0, 0.0, 0.0, "ZN"), ("NB", "NB", 5, -6.0, 0.0, 0.0, "NB")]
    pdb = write_pdb(tmp_path / "obabel.pdb", atoms)
    assert "Ca" in set(mda.Universe(pdb).atoms.elements)  # the file really says calcium
    a, b = both_paths(pdb)
    assert agree(a, b) == {"C": 9, "N": 3, "O": 3, "Zn": 1, "Nb": 1, "virtual": 0}
    assert a.summary()["overruled_elements"] == {"ALA:CA Ca → C": 3}
    with pytest.warns(InputWarning, match="names overrule the elements stored.*ALA:CA Ca → C ×3"):
        open_trajectory(mda.Universe(pdb), "all")
    out = tmp_path / "e.npy"
    code, lines = cli(capsys, pdb, pdb, "-o", out, "--select", "all",
                      "--allow-unseen-elements", "--no-unit-check")
    assert code == 0, lines
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["elements"] == {"C": 9, "N": 3, "O": 3, "Zn": 1, "Nb": 1}
    assert sidecar["unseen_elements"] == ["Zn", "Nb"]
    assert sidecar["overruled_elements"] == {"ALA:CA Ca → C": 3}


def test_side_chain_names_read_as_metals_lose_but_selenium_stays(tmp_path):
    atoms = [("N", "MET", 1, 0.0, 0.0, 0.0, "N"), ("CA", "MET", 1, 1.46, 0.0, 0.0, "C"),
             ("CG", "MET", 1, 2.0, 1.4, 0.0, "C"), ("SD", "MET", 1, 3.8, 1.4, 0.0, "SE"),
             ("CE", "MET", 1, 4.5, 2.8, 0.0, "CE")]
    a, b = both_paths(write_pdb(tmp_path / "met.pdb", atoms))
    assert a.summary()["elements"] == {"C": 3, "N": 1, "Se": 1}  # SeMet written as MET
    assert a.summary()["overruled_elements"] == {"MET:CE Ce → C": 1}
    assert b.summary()["elements"] == {"C": 3, "N": 1, "S": 1}  # mdtraj's elements are hints


# ----------------------------------------------------------------------------- 6. HOOMD / OPLS
def write_hoomd_xml(path, types, xyz) -> str:
    position = "\n".join(f"{x} {y} {z}" for x, y, z in xyz)
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<hoomd_xml version="1.6">\n'
        f'<configuration time_step="0" dimensions="3" natoms="{len(types)}">\n'
        '<box lx="5" ly="5" lz="5" xy="0" xz="0" yz="0"/>\n'
        f'<position num="{len(types)}">\n{position}\n</position>\n'
        f'<type num="{len(types)}">\n' + "\n".join(types) + "\n</type>\n"
        f'<mass num="{len(types)}">\n'
        + "\n".join("12.011" if t == "opls_135" else "1.008" for t in types)
        + "\n</mass>\n</configuration>\n</hoomd_xml>\n")
    return str(path)


ETHANE = np.array([[0, 0, 0], [1.53, 0, 0], [-0.38, 1.02, 0], [-0.38, -0.51, 0.88],
                   [-0.38, -0.51, -0.88], [1.91, -1.02, 0], [1.91, 0.51, 0.88],
                   [1.91, 0.51, -0.88]]) / 10  # nm
ETHANE_TYPES = ["opls_135", "opls_135"] + ["opls_140"] * 6


def test_opls_type_names_in_residue_A_are_not_oxygen_of_a_nucleotide(tmp_path):
    """mdtraj names every HOOMD particle's residue ``A`` and its name the type (``opls_135``):
    not adenine, not oxygen. Without elements both paths refuse; with them both agree."""
    xml = write_hoomd_xml(tmp_path / "ethane.hoomdxml", ETHANE_TYPES, ETHANE)
    traj = md.load_hoomdxml(xml)
    assert {r.name for r in traj.topology.residues} == {"A"}
    with pytest.raises(InputError, match=r"no element could be resolved: A:opls_135 ×2"):
        quiet(traj)
    with pytest.raises(InputError, match="no atom names and no elements"):
        quiet(mda.Universe(xml, topology_format="XML"))
    spec = tmp_path / "elements.txt"
    spec.write_text("opls_135 C\nopls_140 H\ntype:opls_135 C\ntype:opls_140 H\n")
    a = quiet(mda.Universe(xml, topology_format="XML"), elements=spec)
    assert agree(a, quiet(traj, elements=spec)) == {"H": 6, "C": 2, "virtual": 0}


def test_hoomd_gsd_with_opls_type_names_on_both_paths(tmp_path, capsys):
    """The case as reported: a HOOMD GSD file of ethane whose particle types are OPLS types."""
    try:
        import gsd.hoomd
    except ImportError:  # the 'test' extra installs it; CI must not skip
        if IN_CI:
            raise
        pytest.skip("gsd is not installed (pip install '.[test]')")
    frame = gsd.hoomd.Frame()
    frame.particles.N = 8
    frame.particles.types = ["opls_135", "opls_140"]
    frame.particles.typeid = [0, 0, 1, 1, 1, 1, 1, 1]
    frame.particles.position = (ETHANE * 10).astype(np.float32)
    frame.particles.mass = [12.011] * 2 + [1.008] * 6
    frame.configuration.box = [30, 30, 30, 0, 0, 0]
    path = tmp_path / "ethane.gsd"
    with gsd.hoomd.open(str(path), "w") as handle:
        handle.append(frame)
    for message in refusals(str(path)):
        assert "no element could be resolved" in message and "opls_135 ×2" in message
    spec = tmp_path / "elements.txt"
    spec.write_text("opls_135 C\nopls_140 H\n")
    a, b = both_paths(str(path), elements=spec)
    assert agree(a, b) == {"H": 6, "C": 2, "virtual": 0}
    code, lines = cli(capsys, path, path, "-o", tmp_path / "e.npy")
    assert code == 1 and len(lines) == 1 and "opls_140 ×6" in lines[0], lines


def test_gsd_like_topology_in_code_on_both_paths():
    """The topology mdtraj's GSD reader builds (residue A, type names, 'virtual' elements) and
    the one MDAnalysis's builds (names = types): both refuse, neither gives 8 oxygens."""
    top = md.Topology()
    residue = top.add_residue("A", top.add_chain())
    for name in ETHANE_TYPES:
        top.add_atom(name, md.element.virtual, residue)
    u = mda.Universe.empty(8, trajectory=True)
    u.add_TopologyAttr("names", ETHANE_TYPES)
    u.add_TopologyAttr("resnames", ["0"])
    u.atoms.positions = ETHANE * 10
    for obj in (md.Trajectory(ETHANE[None], top), u):
        with pytest.raises(InputError, match=r"no element could be resolved: .*opls_135"):
            quiet(obj)


def test_residue_named_like_a_nucleotide_without_nucleic_atoms_is_ordinary():
    res = resolve_elements(["CL1", "C1", "H1"], ["A", "A", "A"], np.zeros(3, dtype=int))
    assert res.z.tolist() == [17, 6, 1]
    dna = resolve_elements(["P", "OP1", "C1'", "N9"], ["A"] * 4, np.zeros(4, dtype=int))
    assert dna.z.tolist() == [15, 8, 6, 7] and dna.kind.tolist() == [ATOM] * 4


# ----------------------------------------------------------------------------- 7. Drude water
SWM4 = [(n, "SWM4", r + 2, 5.0 + 3.1 * r + dx, 5.0 + dy, 0.0) for r in range(3)
        for n, dx, dy in (("OH2", 0.0, 0.0), ("OM", 0.24, 0.0), ("H1", 0.96, 0.0),
                          ("H2", -0.24, 0.93), ("DOH2", 0.01, 0.0))]


@pytest.mark.parametrize("column", [False, True])
def test_swm4_drude_water_is_water_with_its_sites_left_out(tmp_path, column):
    """SWM4: OM and the Drude particle DOH2 are never atoms (even marked O in the element
    column), the waters are water (``solute`` leaves them out, the warning counts 9 atoms)."""
    atoms = ETHANOL + [(*a, "O" if a[0] != "H1" and a[0] != "H2" else "H") if column else a
                       for a in SWM4]
    pdb = write_pdb(tmp_path / "swm4.pdb", atoms)
    a, b = both_paths(pdb)
    assert agree(a, b) == {"H": 12, "C": 2, "O": 4, "virtual": 6}
    if column:
        assert a.summary()["overruled_elements"] == {"SWM4:OM O → virtual": 3,
                                                     "SWM4:DOH2 O → virtual": 3}
    solute = both_paths(pdb, select="solute")
    assert agree(*solute) == {"H": 6, "C": 2, "O": 1, "virtual": 0}
    with pytest.warns(InputWarning, match="includes 9 water and ion atom"):
        open_trajectory(mda.Universe(pdb), "all")


def test_swm4_embeds_the_same_on_both_paths(tmp_path, weights_url):
    pdb = write_pdb(tmp_path / "swm4.pdb", ETHANOL + SWM4)
    featurizer = GeomFeaturizer(select="all", check_units=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x = featurizer.transform(mda.Universe(pdb))
        y = featurizer.transform(md.load(pdb))
    assert x.shape == (1, 64) and np.abs(x - y).max() <= 1e-4


# ----------------------------------------------------------------------------- 8. dummies
def test_dummy_atoms_marked_hydrogen_are_left_out(tmp_path):
    atoms = [(*a, a[0][0]) for a in ETHANOL]
    atoms += [("Du1", "ETH", 1, 0.5, 0.5, 0.0, "H"), ("Du2", "ETH", 1, 0.7, 0.5, 0.0, "H")]
    a, b = both_paths(write_pdb(tmp_path / "du.pdb", atoms))
    assert agree(a, b) == {"H": 6, "C": 2, "O": 1, "virtual": 2}
    assert a.summary()["overruled_elements"] == {"ETH:Du1 H → virtual": 1,
                                                 "ETH:Du2 H → virtual": 1}


def test_massless_site_named_h_is_left_out(tmp_path):
    """A PSF site of mass 0 named H (a lone pair) is no hydrogen, on either path."""
    psf = write_psf(tmp_path / "m.psf", [(n, "ETH", 1, "CT3", 1.008 if n[0] == "H" else 12.0)
                                         for n, *_ in ETHANOL] + [("H", "ETH", 1, "LP", 0.0)])
    pdb = write_pdb(tmp_path / "m.pdb", [*ETHANOL, ("H", "ETH", 1, 0.7, 0.0, 0.0)])
    a, b = both_paths(psf, pdb)
    assert agree(a, b) == {"H": 6, "C": 2, "O": 1, "virtual": 1}
    # a topology that stores the site's element as H and its mass as 0: the mass wins
    u = mda.Universe.empty(10, trajectory=True)
    u.add_TopologyAttr("names", [a[0] for a in ETHANOL] + ["H"])
    u.add_TopologyAttr("resnames", ["ETH"])
    u.add_TopologyAttr("elements", [a[0][0] for a in ETHANOL] + ["H"])
    u.add_TopologyAttr("masses", [1.008 if a[0][0] == "H" else 12.0 for a in ETHANOL] + [0.0])
    u.atoms.positions = np.array([a[3:6] for a in [*ETHANOL, ("H", "ETH", 1, 0.7, 0.0, 0.0)]])
    r = quiet(u)
    assert r.summary()["elements"] == a.summary()["elements"]
    assert r.summary()["overruled_elements"] == {"ETH:H H → virtual": 1}


def test_charmm_drude_particle_is_not_darmstadtium(tmp_path):
    cys = [("N", 0.0, 0.0), ("CA", 1.46, 0.0), ("C", 2.0, 1.4), ("O", 1.3, 2.4),
           ("CB", 2.0, -1.4), ("SG", 3.8, -1.4), ("DSG", 3.82, -1.4), ("DCA", 1.47, 0.0)]
    a, b = both_paths(write_pdb(tmp_path / "cys.pdb", [(n, "CYS", 1, x, y, 0.0)
                                                       for n, x, y in cys]))
    assert agree(a, b) == {"C": 3, "N": 1, "O": 1, "S": 1, "virtual": 2}


def test_deuterium_names_are_not_drude_particles():
    names = ["N", "CA", "C", "O", "CB", "OG", "D", "DA", "DB2", "DG"]
    res = resolve_elements(names, ["SER"] * len(names), np.zeros(len(names), dtype=int))
    assert (res.kind[:6] == ATOM).all() and (res.kind[6:] != VIRTUAL).all()


# ----------------------------------------------------------------------------- 9. in memory
def test_topology_built_in_code_with_explicit_elements_is_accepted():
    """Names such as A0 say nothing about the element; an element set in code stands."""
    symbols = ["C", "C", "O", "H", "H", "H", "H", "H", "H"]
    xyz = np.array([a[3:6] for a in ETHANOL]) / 10
    top = md.Topology()
    residue = top.add_residue("MOL", top.add_chain())
    for i, s in enumerate(symbols):
        top.add_atom(f"A{i}", md.element.get_by_symbol(s), residue)
    u = mda.Universe.empty(9, trajectory=True)
    u.add_TopologyAttr("names", [f"A{i}" for i in range(9)])
    u.add_TopologyAttr("resnames", ["MOL"])
    u.add_TopologyAttr("elements", symbols)
    u.atoms.positions = xyz * 10
    assert agree(quiet(md.Trajectory(xyz[None], top)), quiet(u)) == {"H": 6, "C": 2, "O": 1,
                                                                    "virtual": 0}


def test_an_element_the_name_contradicts_is_still_refused():
    """B1 names boron: a mass-guessed germanium (mdtraj's PSF reader) is not taken."""
    top = md.Topology()
    residue = top.add_residue("MOL", top.add_chain())
    top.add_atom("B1", md.element.germanium, residue)
    top.add_atom("X1", md.element.carbon, residue)
    with pytest.raises(InputError, match=r"no element could be resolved: MOL0:B1"):
        quiet(md.Trajectory(np.zeros((1, 2, 3)), top))
