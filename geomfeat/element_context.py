"""Element rules that need a residue's context, not one (residue name, atom name) pair.

:func:`geomfeat.elements.table_element` reads one atom at a time. The rules here look at the
other atoms of its residue (or of the structure) and are applied by
:func:`geomfeat.elements.resolve_elements`:

* :func:`drude_particles`: CHARMM Drude particles are named ``D`` + the name of the heavy atom
  they belong to (``DOH2`` of ``OH2``, ``DSG`` of ``SG``); they are virtual sites, not atoms
  (``DSG`` is not darmstadtium);
* :func:`single_atom_elements`: a residue of one atom named by an element symbol (``PT``,
  ``PB``, ``PD``, ``SN``) is that element, not the element of its first letter, also where the
  file stores that first letter (:func:`lone_ions_stored_by_first_letter`);
* :func:`nucleotide_names_without_nucleotide`: a residue named like a nucleotide (``A``, as
  mdtraj names every residue of HOOMD files) whose atoms carry no nucleic-acid atom name is read
  as any other residue;
* :func:`contradicted_protein_elements`: a stored element that contradicts a protein residue's
  atom name (``CA`` of ALA stored as calcium) loses to the name;
* :func:`mdtraj_virtual_marks`: mdtraj's "virtual" element, which is also its answer for names
  it cannot guess, marks a virtual site only where mdtraj would have guessed an element;
* :func:`mark_coarse_geometry`: particles spaced like coarse-grained beads, whatever their
  names, are no atoms.
"""

from __future__ import annotations

import re

import numpy as np

from .periodic import ATOM, COARSE_GEOMETRY, atomic_number

__all__ = ["contradicted_protein_elements", "drude_particles", "lone_ions_stored_by_first_letter",
           "mark_coarse_geometry", "mdtraj_virtual_marks", "nucleotide_names_without_nucleotide",
           "single_atom_elements", "upper_names"]

#: Atom names only nucleic acids have (sugar-phosphate backbone, purine N9, base ring atoms).
NUCLEIC_ATOM_NAMES = frozenset(
    "P OP1 OP2 OP3 O1P O2P O3P O5' C5' C4' O4' C3' O3' C2' O2' C1' N9 N1 N3 C2 C4 C5 C6 "
    "C8 N7 N6 O6 N2 N4 O2 O4 C7 C5M".split())
#: Backbone atom names of a protein residue: their element is never in doubt.
PROTEIN_BACKBONE = frozenset("N CA C O OXT OT1 OT2 H HN HA HA2 HA3 H1 H2 H3 CB".split())
#: Elements an amino-acid residue is made of (selenium of selenomethionine included).
PROTEIN_ELEMENTS = frozenset((1, 6, 7, 8, 16, 34))
#: A name mdtraj's GRO and PRMTOP readers would have given an element (its first letter).
_GUESSABLE = re.compile(r"^[HBCNOFPSKVYIWU][A-Z0-9]*$")


def upper_names(names: np.ndarray) -> np.ndarray:
    """Names stripped and in upper case (converted once per distinct name: big systems have
    tens of thousands of atoms but a few hundred names)."""
    unique, inverse = np.unique(np.asarray(names, dtype=str), return_inverse=True)
    return np.char.upper(np.char.strip(unique))[inverse.reshape(-1)]


def drude_particles(names: np.ndarray, resindices: np.ndarray) -> np.ndarray:
    """Atoms named ``D`` + the name of a heavy atom of the same residue (CHARMM Drude).

    Deuterium names (``D``, ``DA``, ``DB2``, ``DH`` of Tyr) never match: no heavy atom of the
    residue is named ``A``, ``B2`` and hydrogen parents (``H``) are not accepted.

    Returns
    -------
    ndarray of bool, shape (N,)
    """
    upper = upper_names(names)
    candidate = np.flatnonzero((np.char.str_len(upper) > 1) & (np.char.startswith(upper, "D")))
    out = np.zeros(upper.shape[0], dtype=bool)
    if candidate.size == 0:
        return out
    wanted = set(np.unique(resindices[candidate]).tolist())
    in_res = np.flatnonzero(np.isin(resindices, list(wanted)))
    present = {(int(resindices[i]), str(upper[i])) for i in in_res}
    for i in candidate:
        parent = str(upper[i])[1:]
        if parent[0] not in "H0123456789" and (int(resindices[i]), parent) in present:
            out[i] = True
    return out


def residue_sizes(resindices: np.ndarray) -> np.ndarray:
    """Number of atoms of each atom's residue, shape (N,)."""
    _, inverse, counts = np.unique(resindices, return_inverse=True, return_counts=True)
    return counts[inverse.reshape(-1)]


def single_atom_elements(names: np.ndarray, resnames: np.ndarray, resindices: np.ndarray,
                         excluded_residues: frozenset[str]) -> np.ndarray:
    """Atomic number of atoms alone in their residue and named by an element symbol, else 0.

    The name is read without trailing digits and charge signs (``PT``, ``Sn2+``, ``PD1``);
    residues named in ``excluded_residues`` (protein, nucleic acid, water) never count: a
    Cα-only model's ``CA`` is a bead, not calcium.
    """
    z = np.zeros(len(resindices), dtype=np.int64)
    alone = np.flatnonzero(residue_sizes(resindices) == 1)
    if alone.size == 0:
        return z
    alone = alone[~np.isin(upper_names(np.asarray(resnames)[alone]), list(excluded_residues))]
    for i, name in zip(alone, upper_names(np.asarray(names)[alone]), strict=True):
        z[i] = atomic_number(re.sub(r"[\d+\-]+$", "", str(name)))
    return z


def lone_ions_stored_by_first_letter(stored: np.ndarray, lone: np.ndarray, names: np.ndarray,
                                     resnames: np.ndarray) -> np.ndarray:
    """Lone atoms named by a two-letter symbol, in a residue of that name, whose stored element
    is the name's first letter (``PT`` of residue ``PT`` stored as P, ``SN`` as S): a file
    written by a tool that read the name's first letter (mdtraj does).

    Parameters
    ----------
    stored, lone : ndarray of int, shape (N,)
        Stored atomic numbers, and :func:`single_atom_elements` (0: not a lone named atom).

    Returns
    -------
    ndarray of bool, shape (N,)
    """
    out = (stored > 0) & (lone > 0) & (stored != lone)
    where = np.flatnonzero(out)
    if where.size:
        name = [re.sub(r"[\d+\-]+$", "", str(n)) for n in upper_names(np.asarray(names)[where])]
        res = [re.sub(r"[\d+\-]+$", "", str(r)) for r in upper_names(np.asarray(resnames)[where])]
        out[where] = [len(n) == 2 and n == r and atomic_number(n[0]) == int(s)
                      for n, r, s in zip(name, res, stored[where], strict=True)]
    return out


def nucleotide_names_without_nucleotide(names: np.ndarray, resnames: np.ndarray,
                                        resindices: np.ndarray,
                                        nucleic_residues: frozenset[str]) -> np.ndarray:
    """Atoms of residues named like a nucleotide that hold no nucleic-acid atom name.

    Returns
    -------
    ndarray of bool, shape (N,)
    """
    res = upper_names(resnames)
    named = np.isin(res, list(nucleic_residues))
    if not named.any():
        return named
    upper = np.char.replace(upper_names(names), "*", "'")
    nucleic = np.unique(resindices[named & np.isin(upper, list(NUCLEIC_ATOM_NAMES))])
    return named & ~np.isin(resindices, nucleic)


def contradicted_protein_elements(stored: np.ndarray, by_name: np.ndarray, names: np.ndarray,
                                  resnames: np.ndarray, protein_residues: frozenset[str]
                                  ) -> np.ndarray:
    """Atoms of protein residues whose stored element contradicts their name.

    A backbone name (``N``, ``CA``, ``C``, ``O``, ``CB``, ...) always wins over a different
    stored element; so does any name whose stored element no amino acid contains (calcium,
    cadmium, neon, mercury: atom names ``CA``, ``CD``, ``NE``, ``HG`` read as symbols).

    Parameters
    ----------
    stored, by_name : ndarray of int, shape (N,)
        Atomic numbers stored in the file and read from the names (0: none).

    Returns
    -------
    ndarray of bool, shape (N,)
    """
    out = (stored > 0) & (by_name > 0) & (stored != by_name)
    where = np.flatnonzero(out)
    if where.size:
        protein = np.isin(upper_names(np.asarray(resnames)[where]), list(protein_residues))
        backbone = np.isin(upper_names(np.asarray(names)[where]), list(PROTEIN_BACKBONE))
        foreign = ~np.isin(stored[where], list(PROTEIN_ELEMENTS))
        out[where] = protein & (foreign | backbone)
    return out


def mdtraj_virtual_marks(names: np.ndarray, is_virtual: np.ndarray) -> np.ndarray:
    """Atoms whose mdtraj element ``virtual`` marks a virtual site, not a failed guess.

    mdtraj's GRO and PRMTOP readers answer "virtual" for names whose first letter (plus lower
    case letters, for GRO) is no element symbol; its PSF reader for a mass of 0, its PRMTOP
    reader for atomic numbers below 1, and a Topology built in code where the caller says so.
    A name such as ``H`` or ``C1`` would have been guessed, so "virtual" on it is a real mark.
    When every atom is "virtual" (mdtraj's HOOMD readers say so of all particles) it marks
    nothing.
    """
    is_virtual = np.asarray(is_virtual, dtype=bool)
    if is_virtual.all():
        return np.zeros_like(is_virtual)
    guessable = np.array([bool(_GUESSABLE.match(str(n).strip())) for n in names], dtype=bool)
    return is_virtual & guessable


#: Elements whose atoms always have a covalent partner in a molecule (H B C N O F Si P S Cl
#: Se Br I): what coarse-grained beads are read as.
_COVALENT = frozenset((1, 5, 6, 7, 8, 9, 14, 15, 16, 17, 34, 35, 53))


def mark_coarse_geometry(positions: np.ndarray, z: np.ndarray, kind: np.ndarray,
                         solvent: np.ndarray, lone: np.ndarray | None) -> str:
    """Mark atoms spaced like coarse-grained beads (in place); say why, or ``""``.

    Judged are the atoms (``kind`` ATOM) of covalent elements outside water and ions
    (``solvent``) and outside lone-atom residues (``lone``); those of them become
    ``COARSE_GEOMETRY`` when :func:`geomfeat.sanity.coarse_grained_spacing` says so.

    Parameters
    ----------
    positions : ndarray, shape (N, 3)
        One frame, Å.
    z, kind, solvent : ndarray, shape (N,)
        The resolver's atomic numbers, kinds (changed here) and solvent flags.
    lone : ndarray of int, shape (N,), optional
        :func:`single_atom_elements` (non-zero: a lone atom, no partner expected).
    """
    from .sanity import BOND_ANGSTROM, coarse_grained_spacing

    atoms = kind == ATOM
    # metals and noble gases need no bonded partner (a gold slab, an ionic crystal)
    candidates = atoms & ~solvent & np.isin(z, list(_COVALENT))
    if lone is not None:  # lone ions and atoms (PT, AR, a lone water oxygen)
        candidates &= lone == 0
    found = coarse_grained_spacing(positions, candidates, atoms)
    if found is None:
        return ""
    kind[candidates] = COARSE_GEOMETRY
    fraction, median = found
    return (f"{fraction:.0%} of its particles have no other particle within {BOND_ANGSTROM} Å "
            "(atoms have a bonded partner closer than that) and the median distance to the "
            f"nearest is {median:.1f} Å, the spacing of coarse-grained beads")
