"""Which atoms geomfeat embeds, with which elements, for MDAnalysisTests' topologies.

Prints the Markdown table of docs/conventions.md ("Elements, by file"): for each file, the atoms
in it, the atoms ``select="heavy"`` and ``select="solute", heavy=True`` embed on the MDAnalysis
path (and on the mdtraj path where mdtraj reads the format), the elements of the ``heavy``
atoms, and what was left out. Needs ``pip install MDAnalysisTests``; no encoder is run.

    python examples/elements_table.py
    python examples/elements_table.py --cryst1   # what 4E43's crystal cell would change (encoder)
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

import MDAnalysis as mda
import mdtraj as md
from MDAnalysisTests import datafiles as D

from geomfeat.errors import InputError
from geomfeat.trajectory import open_trajectory


def hmr_psf(folder: Path) -> Path:
    """adk.psf with hydrogen mass repartitioning (H 3.024 amu, heavy atoms 2.016 amu lighter)."""
    lines = Path(D.PSF).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "!NATOM" in line)
    for i in range(start + 1, start + 1 + int(lines[start].split()[0])):
        fields = lines[i].split()
        new = 3.024 if fields[4].startswith("H") else float(fields[7]) - 2.016
        lines[i] = lines[i].replace(fields[7], f"{new:.4f}".rjust(len(fields[7])), 1)
    path = folder / "adk_hmr.psf"
    path.write_text("\n".join(lines) + "\n")
    return path


def cases(folder: Path) -> list[tuple[str, tuple, tuple | None]]:
    """(label, MDAnalysis Universe arguments, mdtraj load arguments or None)."""
    hmr = hmr_psf(folder)
    return [
        ("adk.psf, H mass 3.024 (HMR) + DCD", (hmr, D.DCD), (D.DCD, hmr)),
        ("adk_oplsaa.tpr (TIP4P)", (D.TPR,), None),
        ("adk_oplsaa.gro (TIP4P)", (D.GRO,), (D.GRO,)),
        ("cobrotoxin.tpr (TIP4P)", (D.TPR_xvf,), None),
        ("cobrotoxin.pdb (TIP4P, no element column)", (D.PDB_xvf,), (D.PDB_xvf,)),
        ("SiN_tric_namd.psf + DCD", (D.PSF_NAMD_TRICLINIC, D.DCD_NAMD_TRICLINIC),
         (D.DCD_NAMD_TRICLINIC, D.PSF_NAMD_TRICLINIC)),
        ("bala.prmtop (no ATOMIC_NUMBER) + NCDF", (D.PRMncdf, D.NCDF), (D.NCDF, D.PRMncdf)),
        ("ace_tip3p.parm7 (ATOMIC_NUMBER) + NC", (D.PRM_NCBOX, D.TRJ_NCBOX),
         (D.TRJ_NCBOX, D.PRM_NCBOX)),
        ("namd_cgenff.psf (ligands) + PDB", (D.PSF_NAMD, D.PDB_NAMD), (D.PDB_NAMD, D.PSF_NAMD)),
        ("4E43.pdb (altlocs, CRYST1)", (D.PDB_full,), (D.PDB_full,)),
        ("5a7u.pdb (Zn)", (D.PDB_CRYOEM_BOX,), (D.PDB_CRYOEM_BOX,)),
        ("1k5i_c36.pdb.gz (RNA, CHARMM36m)", (D.RNA_PDB,), (D.RNA_PDB,)),
        ("mol2/Molecule.mol2 (SYBYL types)", (D.mol2_molecule,), (D.mol2_molecule,)),
        ("adk_open.pqr", (D.PQR,), None),
        ("adk_closed.dms (atomic numbers)", (D.DMS,), None),
        ("tip5p.itp (topology only)", (D.ITP_tip5p,), None),
        ("two_water_gro_multiframe.gro", (D.two_water_gro_multiframe,),
         (D.two_water_gro_multiframe,)),
        ("martini_dppc_chol_bilayer.gro (MARTINI)", (D.Martini_membrane_gro,),
         (D.Martini_membrane_gro,)),
        ("lammps/datatest.data", (D.LAMMPSdata,), None),
    ]


def embedded(obj, select: str, heavy: bool = False):
    """(number of atoms, reader) or (short error, None)."""
    try:
        reader = open_trajectory(obj, select, heavy=heavy)
    except InputError as exc:
        text = str(exc)
        short = ("coarse-grained beads" if "coarse-grained" in text else
                 "no names: needs --elements" if "no atom names" in text else
                 "no atoms" if "matches no atoms" in text else text[:40])
        return f"error: {short}", None
    return reader.n_atoms, reader


def main() -> None:
    print("| file | atoms | `heavy` MDAnalysis / mdtraj | `solute` + `heavy` "
          "| elements of `heavy` | left out of `heavy` |")
    print("| --- | ---: | ---: | ---: | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for label, mda_args, md_args in cases(Path(tmp)):
            universe = mda.Universe(*map(str, mda_args))
            n_heavy, reader = embedded(universe, "heavy")
            n_solute, _ = embedded(universe, "solute", heavy=True)
            n_md = "–"
            if md_args is not None:
                traj = md.load(str(md_args[0]), top=None if len(md_args) == 1 else
                               str(md_args[1]))
                n_md, _ = embedded(traj, "heavy")
            if reader is None:
                elements, dropped = "–", "–"
            else:
                summary = reader.summary()
                elements = " ".join(f"{k} {v}" for k, v in summary["elements"].items())
                dropped = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in
                                    summary["dropped"].items() if v) or "–"
                if summary["box"].startswith("ignored"):
                    dropped = ("" if dropped == "–" else dropped + "; ") + "CRYST1 cell not used"
            both = n_heavy if n_md == n_heavy else f"{n_heavy} / {n_md}"
            print(f"| {label} | {len(universe.atoms)} | {both} | {n_solute} | {elements} "
                  f"| {dropped} |")


def cryst1_effect() -> None:
    """How much 4E43's CRYST1 cell, used as a periodic box, would change its embedding."""
    import numpy as np

    from geomfeat import GeomFeaturizer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        universe = mda.Universe(D.PDB_full)
        featurizer = GeomFeaturizer("visnet-denali", select="heavy", pool="atom")
        ignored = featurizer.transform(universe)  # the rule: a lone PDB's cell is not a box
        universe.transfer_to_memory()  # the documented way to use the cell anyway
        used = featurizer.transform(universe)
    graph = np.linalg.norm(used.sum(1) - ignored.sum(1)) / np.linalg.norm(ignored.sum(1))
    per_atom = (np.linalg.norm(used - ignored, axis=-1) / np.linalg.norm(ignored, axis=-1))[0]
    print(f"4E43, {per_atom.size} heavy atoms: the cell changes the summed embedding by "
          f"{graph:.1%}; {int((per_atom > 1e-3).sum())} atom embeddings by more than 0.1 % "
          f"(largest {per_atom.max():.0%})")


if __name__ == "__main__":
    cryst1_effect() if "--cryst1" in sys.argv else main()
