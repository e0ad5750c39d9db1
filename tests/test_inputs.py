"""Elements from topologies, and clear errors for bad input (Python API)."""

from __future__ import annotations

import mdtraj as md
import numpy as np
import pytest
from conftest import quiet_universe

from geomfeat import GeomFeaturizer, InputError, UnknownModelError
from geomfeat.errors import InputWarning
from geomfeat.trajectory import load_universe, open_trajectory

ALA2_Z = [1, 6, 1, 1, 6, 8, 7, 1, 6, 1, 6, 1, 1, 1, 6, 8, 7, 1, 6, 1, 1, 1]


@pytest.fixture(scope="module")
def gro(example_files, tmp_path_factory):
    """The example's first frames as GRO, a format without elements."""
    xtc, pdb = example_files
    folder = tmp_path_factory.mktemp("gro")
    traj = md.load(xtc, top=pdb)[:3]
    traj[0].save_gro(str(folder / "ala2.gro"))
    traj.save_xtc(str(folder / "ala2.xtc"))
    return folder / "ala2.gro", folder / "ala2.xtc", traj


def test_elements_come_from_the_topology(example_files):
    _, pdb = example_files
    assert open_trajectory(md.load(pdb), "all").atomic_numbers.tolist() == ALA2_Z
    assert open_trajectory(quiet_universe(pdb), "all").atomic_numbers.tolist() == ALA2_Z


def test_elements_are_guessed_from_names_when_the_topology_has_none(gro, weights_url):
    gro_file, xtc, traj = gro
    universe = quiet_universe(gro_file, xtc)
    assert not hasattr(universe.atoms, "elements")
    assert open_trajectory(universe, "all").atomic_numbers.tolist() == ALA2_Z
    featurizer = GeomFeaturizer(select="all")
    np.testing.assert_allclose(featurizer.transform(universe), featurizer.transform(traj),
                               atol=1e-5)


def test_repartitioned_hydrogen_masses_do_not_change_elements(gro):
    gro_file, xtc, _ = gro
    universe = quiet_universe(gro_file, xtc)
    hydrogens = universe.select_atoms("name H*")
    universe.add_TopologyAttr("masses", np.where(np.isin(universe.atoms.indices,
                                                         hydrogens.indices), 3.024, 10.0))
    assert open_trajectory(universe, "all").atomic_numbers.tolist() == ALA2_Z
    assert open_trajectory(universe, "heavy").n_atoms == 10


def test_unknown_model_names_the_known_ones():
    with pytest.raises(UnknownModelError, match="visnet-denali"):
        GeomFeaturizer("schnet-qm9")


@pytest.mark.parametrize("option, value", [("pool", "frame"), ("reduce", "max"),
                                           ("features", "vector"), ("dtype", "int8")])
def test_unknown_options_are_rejected(option, value):
    with pytest.raises(ValueError, match=option):
        GeomFeaturizer(**{option: value})


def test_selection_that_matches_nothing(example_files):
    _, pdb = example_files
    with pytest.raises(InputError, match="'resname HOH' matches no atoms"):
        GeomFeaturizer(select="resname HOH").transform(md.load(pdb))
    with pytest.raises(InputError, match="matches no atoms"):
        GeomFeaturizer(select="resname HOH").transform(quiet_universe(pdb))


def test_invalid_selection_string(example_files):
    _, pdb = example_files
    with pytest.raises(InputError, match="invalid selection"):
        GeomFeaturizer(select="resname and and").transform(md.load(pdb))


def test_atomic_number_out_of_range_names_the_atom():
    z = np.array([6, 100, 8])
    with pytest.raises(InputError, match=r"atom 1 \(Z=100\)"):
        GeomFeaturizer(select="all").transform((np.zeros((1, 3, 3)), z))


def test_virtual_sites_are_left_out_with_a_warning(example_files):
    _, pdb = example_files
    traj = md.load(pdb)
    virtual = traj.topology.atom(5)
    virtual.element = md.element.virtual
    virtual.name = "MW"
    with pytest.warns(InputWarning, match=r"1 virtual site.*ACE1:MW \(atom 5\)"):
        reader = GeomFeaturizer(select="all").reader(traj)
    assert reader.n_atoms == 21 and reader.summary()["dropped"]["virtual_sites"] == 1


def test_atom_without_element_is_named(example_files):
    _, pdb = example_files
    traj = md.load(pdb)
    unknown = traj.topology.atom(5)
    unknown.element = md.element.virtual
    unknown.name = "X9"
    with pytest.raises(InputError, match=r"no element could be resolved: ACE1:X9 \(atom 5\)"):
        GeomFeaturizer(select="all").reader(traj)
    with pytest.raises(InputError, match="X9"):  # 'heavy' does not drop it silently either
        GeomFeaturizer(select="heavy").reader(traj)
    assert GeomFeaturizer(select="all", elements={"ACE:X9": "O"}).reader(traj).n_atoms == 22


def test_non_finite_coordinates_name_the_frame(weights_url):
    pos = np.random.default_rng(1).uniform(0, 5, size=(6, 4, 3))
    pos[4, 2, 1] = np.nan
    with pytest.raises(InputError, match=r"frame 4 .* non-finite"):
        GeomFeaturizer(select="all", batch_size=2).transform((pos, np.array([6, 6, 8, 7])))
    pos[4, 2, 1] = np.inf
    with pytest.raises(InputError, match="frame 4"):
        GeomFeaturizer(select="all").transform((pos, np.array([6, 6, 8, 7])))


def test_array_input_shape_errors():
    with pytest.raises(InputError, match="4 atoms but atomic_numbers has 3"):
        GeomFeaturizer().transform((np.zeros((2, 4, 3)), np.array([6, 6, 6])))
    with pytest.raises(InputError, match="needs a topology"):
        GeomFeaturizer(select="name CA").transform((np.zeros((2, 3, 3)), np.array([6, 6, 6])))
    with pytest.raises(InputError, match="needs residues"):
        GeomFeaturizer(pool="residue").transform((np.zeros((2, 3, 3)), np.array([6, 6, 6])))


def test_unsupported_object():
    with pytest.raises(InputError, match="cannot read"):
        GeomFeaturizer().transform("traj.xtc")


def test_missing_files_and_atom_count_mismatch(example_files, tmp_path):
    xtc, pdb = example_files
    with pytest.raises(InputError, match=r"trajectory file not found: .*nope\.xtc"):
        load_universe(tmp_path / "nope.xtc", pdb)
    with pytest.raises(InputError, match="topology file not found"):
        load_universe(xtc, tmp_path / "nope.pdb")
    small = tmp_path / "small.pdb"
    md.load(pdb).atom_slice(range(10)).save_pdb(str(small))
    with pytest.raises(InputError, match="same number of atoms") as info:
        load_universe(xtc, small)
    assert str(xtc) in str(info.value) and str(small) in str(info.value)
