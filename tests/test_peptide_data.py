"""The bundled second development system (examples/peptide) is what its README says it is."""

from __future__ import annotations

import mdtraj as md
import numpy as np
import pytest
from conftest import ROOT

PEPTIDE = ROOT / "examples" / "peptide"
TRAJS = sorted(PEPTIDE.glob("peptide_r*.xtc"))


def test_topology_is_the_capped_tetrapeptide():
    top = md.load_topology(PEPTIDE / "peptide.pdb")
    assert [r.name for r in top.residues] == ["ACE", "ALA", "VAL", "GLY", "ALA", "NME"]
    assert top.n_atoms == 55
    assert top.select("not element H").size == 26
    assert top.n_bonds == 54  # one chain, no rings


def test_eight_trajectories_of_1250_frames_two_ps_apart_without_box():
    """20 ns in all (issue 11 asks for at least 20 ns), under 5 MB in the repository."""
    assert [p.name for p in TRAJS] == [f"peptide_r{i:02d}.xtc" for i in range(8)]
    for path in TRAJS:
        traj = md.load(path, top=PEPTIDE / "peptide.pdb")
        assert traj.n_frames == 1250
        np.testing.assert_allclose(traj.time, np.arange(2, 2501, 2, dtype=float))
        assert traj.unitcell_vectors is None or not np.any(traj.unitcell_lengths)
    assert sum(p.stat().st_size for p in PEPTIDE.iterdir()) < 5e6


@pytest.mark.parametrize("path", TRAJS[:1], ids=lambda p: p.name)
def test_covalent_geometry_is_intact(path):
    traj = md.load(path, top=PEPTIDE / "peptide.pdb")[::50]
    bonds = np.array([[a.index, b.index] for a, b in traj.topology.bonds])
    lengths = md.compute_distances(traj, bonds)  # nm
    assert lengths.min() > 0.09 and lengths.max() < 0.17
    # L residues stay L: improper N-CA-C-CB near -122 degrees in every sampled frame.
    for res in ("ALA2", "VAL3", "ALA5"):
        r = next(r for r in traj.topology.residues if str(r) == res)
        idx = [[r.atom(n).index for n in ("N", "CA", "C", "CB")]]
        improper = np.degrees(md.compute_dihedrals(traj, idx))
        assert np.all((improper > -160) & (improper < -90)), res
