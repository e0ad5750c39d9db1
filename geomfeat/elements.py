"""Atomic numbers of topology atoms: one resolver for every toolkit.

The encoders see atomic numbers and positions only, so a wrong element or a phantom atom is a
wrong embedding that nothing downstream reveals. :func:`resolve_elements` decides, for every atom
of a topology, in this order:

1. an explicit override (``elements=``: one entry per atom, or a mapping keyed by atom name,
   ``"RESNAME:NAME"`` or ``"type:TYPE"``; see :func:`read_elements_file` for the file form);
2. virtual sites, even where the file stores an element for them: atoms the topology marks as
   massless (TPR/PSF/PRMTOP masses of 0; mdtraj's virtual element on a name mdtraj would have
   guessed, see :func:`~geomfeat.element_context.mdtraj_virtual_marks`), dummy names (``MW``,
   ``LP*``, ``EP*``, ``DM*``, ``DU*``; in water also ``M``/``OM``) and CHARMM Drude particles
   (``D`` + a heavy atom's name: ``DOH2``, ``DSG``) — these are never embedded;
3. elements the file really stores (PDB element column, TPR and PRMTOP atomic numbers, mol2,
   DMS), passed in as ``trusted`` — except where a protein residue's atom name contradicts
   them (``ALA:CA`` stored as calcium: a backbone name, or an element no amino acid has);
4. coarse-grained beads (MARTINI names such as ``BB``, ``SC1``, ``PO4``, ``W``): an error;
5. a residue-aware name table: ions by residue name (``NA``/``SOD``/``Na+`` → Na, ``CL``/``CLA``
   → Cl, ``POT``/``K`` → K, ``CA``/``CAL`` → Ca, ...), water models (SWM4/SWM6 Drude water
   included), protein, nucleic-acid and cofactor atom names, and for other residues a
   conservative rule on the leading letters; a residue of a single atom named by an element
   symbol is that element (``PT`` → Pt, ``SN`` → Sn); a residue named like a nucleotide
   (``A``) without nucleic-acid atom names is an ordinary residue; force-field type names
   (``opls_135``) name no element;
6. ``hint`` elements (mdtraj's, which mdtraj may have guessed from masses or names, or which a
   program set) only where the table has no answer and the name does not contradict them (it
   begins with the symbol, or names no element at all: ``A0``);
7. with ``positions``: particles (not water, ions, lone atoms) of which most have no partner
   within bonding distance, spaced like coarse-grained beads, are an error.

Masses are never used to choose an element (hydrogen mass repartitioning makes a 3 amu
hydrogen look like lithium); a mass of exactly 0 read from the file marks a virtual site.
Where names overrule a stored element, :attr:`Resolution.overruled` says so (the readers warn
and record it in the sidecar).

Size: one resolver with its name tables (ions, water models, protein, nucleic acids, CG
beads) and the override-file parser; the periodic table (:mod:`geomfeat.periodic`) and the
rules that need a residue's context (:mod:`geomfeat.element_context`) are already out; what
is left is the resolver's ordered rules, which read best in one place.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from .errors import InputError
from .periodic import (
    ATOM,
    COARSE,
    COARSE_GEOMETRY,
    MAX_Z,
    UNRESOLVED,
    VIRTUAL,
    atomic_number,
    symbol,
)

__all__ = [
    "ATOM",
    "COARSE",
    "COARSE_GEOMETRY",
    "MAX_Z",
    "UNRESOLVED",
    "VIRTUAL",
    "ElementOverride",
    "Resolution",
    "atomic_number",
    "read_elements_file",
    "resolve_elements",
    "symbol",
]

# ----------------------------------------------------------------------------------- tables
def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: Water residues and their atoms (virtual sites of 4- and 5-site models included).
WATER_RESIDUES = _names(
    "HOH WAT SOL H2O DOD TIP TIP3 TIP4 TIP5 TIP3P TIP4P TIP5P TP3 TP4 TP5 T3P T4P T4E T5P TP4E "
    "TIP4E SPC SPCE SPE OPC OPC3 HO4 T3H "
    "SWM4 SWM6 SWM SW4 SW6 SWM4N SWM6N SWMN TIP4PEW TIP4P05 TIP4PD TIP4F TIP4PF TIP3F TIP4PFB "
    "TIP3PFB T4P05 T4F")
_WATER_VIRTUAL = _names("MW M OM LP LP1 LP2 EP EP1 EP2 EPW MW1 VS VS1 VS2 MX DOH2 DOW")

#: Ion residue names (charges and digits stripped, upper case) → element.
_ION_ALIASES = {"SOD": "Na", "CLA": "Cl", "CLM": "Cl", "POT": "K", "CAL": "Ca", "C0": "Ca",
                "LIT": "Li", "CES": "Cs", "IOD": "I", "RUB": "Rb", "ZN2": "Zn", "FE2": "Fe",
                "FE3": "Fe", "CU1": "Cu", "CU2": "Cu", "CD2": "Cd", "MG2": "Mg", "MN2": "Mn",
                "NIO": "Na", "CIO": "Cl", "KIO": "K"}
_ION_SYMBOLS = _names("Li Na K Rb Cs Mg Ca Sr Ba Zn Fe Mn Cu Co Ni Cd Hg F Cl Br I Al Ag")
#: Residues that hold several ions, each named by its element.
_ION_CONTAINERS = _names("ION IONS")

PROTEIN_RESIDUES = _names(
    "ALA ARG ASN ASP CYS GLN GLU GLY HIS ILE LEU LYS MET PHE PRO SER THR TRP TYR VAL "
    "HID HIE HIP HSD HSE HSP HIS1 HIS2 HISA HISB HISD HISE HISH HSC LYN LYSH LSN ASH ASPH ASPP "
    "GLH GLUH GLUP CYX CYM CYS2 CYSH CYN ARN TYM SEC MSE NLE HYP SEP TPO PTR ORN "
    "ACE NME NMA NH2 NHE NAC CT3 FOR "
    "NALA NARG NASN NASP NCYS NGLN NGLU NGLY NHIS NHID NHIE NHIP NILE NLEU NLYS NMET NPHE NPRO "
    "NSER NTHR NTRP NTYR NVAL CALA CARG CASN CASP CCYS CGLN CGLU CGLY CHIS CHID CHIE CHIP CILE "
    "CLEU CLYS CMET CPHE CPRO CSER CTHR CTRP CTYR CVAL")
NUCLEIC_RESIDUES = _names(
    "A C G U T I DA DC DG DT DU DI RA RC RG RU ADE CYT GUA THY URA "
    "A5 A3 C5 C3 G5 G3 U5 U3 DA5 DA3 DC5 DC3 DG5 DG3 DT5 DT3 RA5 RA3 RC5 RC3 RG5 RG3 RU5 RU3 "
    "AN CN GN UN DAN DCN DGN DTN "
    "ATP ADP AMP GTP GDP GMP CTP CDP UTP UDP TTP ANP ACP NAD NAI NAP NDP NADH NADP FAD FMN SAM "
    "SAH COA CAMP")
#: Metal-containing cofactors: atom name → element (other atoms by their leading letter).
_COFACTOR_METALS = {"HEM": {"FE": "Fe"}, "HEME": {"FE": "Fe"}, "HEC": {"FE": "Fe"},
                    "HEA": {"FE": "Fe"}, "HEB": {"FE": "Fe"}, "HEO": {"FE": "Fe"},
                    "B12": {"CO": "Co"}, "CNC": {"CO": "Co"}, "COB": {"CO": "Co"},
                    "BCL": {"MG": "Mg"}, "CLA": {"MG": "Mg"}, "CHL": {"MG": "Mg"}}

#: MARTINI bead names that no atomistic residue uses: a residue holding one is coarse-grained.
CG_BEADS = _names("BB SC1 SC2 SC3 SC4 SC5 SC6 NC3 PO4 GL0 GL1 GL2 CNO ROH AM1 AM2 W WF PW WP WM "
                  "BP4 SP1 SP2")
#: Residues whose lone atom is never an ion or a lone atom named by its symbol.
_BIOPOLYMER_OR_WATER = PROTEIN_RESIDUES | NUCLEIC_RESIDUES | WATER_RESIDUES
#: Names of dummy particles in any residue (GROMACS MW/DM, CHARMM lone pairs, Amber extra points).
_VIRTUAL_NAME = re.compile(r"^(MW|LP|EP|DM|DU)[0-9A-Z']*$")
#: Force-field atom types used as names (HOOMD files: ``opls_135``): they name no element.
_TYPE_NAME = re.compile(r"^[A-Z]{3,}_")
#: Exact names of metals inside larger residues (``FE1``, ``ZN``).
_METAL_NAME = re.compile(r"^(FE|ZN|MG|MN|CU|CO|NI)\d*$")


def _ion_element(name: str) -> str | None:
    key = re.sub(r"[\d+\-]+$", "", name.strip()).upper()
    full = name.strip().upper()
    if full in _ION_ALIASES:
        return _ION_ALIASES[full]
    if key in _ION_ALIASES:
        return _ION_ALIASES[key]
    for sym in _ION_SYMBOLS:
        if key == sym.upper():
            return sym
    return None


def _lead(name: str) -> str:
    """Atom name in upper case without leading digits (``1HG2`` → ``HG2``)."""
    return name.strip().upper().lstrip("0123456789")


def _by_first_letter(name: str, letters: str) -> str | None:
    n = _lead(name)
    return n[0] if n and n[0] in letters else None


@cache
def table_element(resname: str, name: str) -> tuple[int, int, bool]:
    """``(kind, Z, solvent)`` of one atom from geomfeat's residue-aware name table.

    ``kind`` is :data:`ATOM` (with ``Z``), :data:`VIRTUAL` or :data:`UNRESOLVED`; ``solvent`` is
    true for water and ions. Coarse-grained residues are recognised per residue by
    :func:`resolve_elements`, not here.
    """
    res = resname.strip().upper()
    n = _lead(name)
    if not n or _TYPE_NAME.match(n):
        return UNRESOLVED, 0, res in WATER_RESIDUES
    if res in WATER_RESIDUES:
        if n in _WATER_VIRTUAL or _VIRTUAL_NAME.match(n):
            return VIRTUAL, 0, True
        sym = _by_first_letter(n, "OH")
        return (ATOM, atomic_number(sym), True) if sym else (UNRESOLVED, 0, True)
    if _VIRTUAL_NAME.match(n):
        return VIRTUAL, 0, False
    ion = _ion_element(resname)
    if ion is not None and _ion_element(name) == ion:  # NA/NA, SOD/SOD, Na+/Na+, ZN/ZN
        return ATOM, atomic_number(ion), True
    if res in _ION_CONTAINERS:
        ion = _ion_element(name)
        return (ATOM, atomic_number(ion), True) if ion else (UNRESOLVED, 0, True)
    if res in PROTEIN_RESIDUES:
        if res in ("MSE", "SEC") and n.startswith("SE"):
            return ATOM, 34, False
        sym = _by_first_letter(n, "HCNOS")
        return (ATOM, atomic_number(sym), False) if sym else (UNRESOLVED, 0, False)
    if res in NUCLEIC_RESIDUES:
        sym = _by_first_letter(n, "HCNOPS")
        return (ATOM, atomic_number(sym), False) if sym else (UNRESOLVED, 0, False)
    metal = _COFACTOR_METALS.get(res, {}).get(re.sub(r"\d+$", "", n))
    if metal:
        return ATOM, atomic_number(metal), False
    # any other residue (ligands, lipids, materials): leading letters, conservatively
    for prefix, sym in (("CL", "Cl"), ("BR", "Br"), ("SI", "Si")):
        if n.startswith(prefix):
            return ATOM, atomic_number(sym), False
    if _METAL_NAME.match(n):
        return ATOM, atomic_number(n[:2]), False
    if n[0] in "HCNOSP":
        return ATOM, atomic_number(n[0]), False
    if n[0] in "FI" and (len(n) == 1 or n[1].isdigit()):
        return ATOM, atomic_number(n[0]), False
    return UNRESOLVED, 0, False


# ----------------------------------------------------------------------------------- override
@dataclass(frozen=True)
class ElementOverride:
    """Elements given by the user, which win over everything else.

    Attributes
    ----------
    per_atom : ndarray of int, optional
        One atomic number per atom of the input (``-1``: a virtual site, dropped).
    by_key : dict
        ``{"NAME" | "RESNAME:NAME" | "type:TYPE": Z}`` (``-1``: virtual site); the most specific
        key wins (``RESNAME:NAME`` over ``NAME`` over ``type:``).
    """

    per_atom: np.ndarray | None = None
    by_key: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_user(cls, elements) -> ElementOverride | None:
        """Parse ``elements=``: ``None``, a sequence (one per atom), a mapping, or a file path."""
        if elements is None or isinstance(elements, ElementOverride):
            return elements
        if isinstance(elements, (str, os.PathLike)):
            return cls(by_key=read_elements_file(elements))
        if isinstance(elements, Mapping):
            return cls(by_key={_key(k): _parse_value(v, k) for k, v in elements.items()})
        values = list(elements)
        return cls(per_atom=np.array([_parse_value(v, f"entry {i}") for i, v in
                                      enumerate(values)], dtype=np.int64))


def _key(key: str) -> str:
    key = str(key).strip()
    if key.lower().startswith("type:"):
        return "type:" + key[5:].strip()
    return key.upper()


def _parse_value(value, where) -> int:
    if value is None or (isinstance(value, str) and value.strip().lower() in
                         ("-", "virtual", "vs", "dummy", "none")):
        return -1
    if isinstance(value, (int, np.integer)):
        z = int(value)
        if z <= 0:
            return -1
        if not 0 < z < MAX_Z:
            raise InputError(f"elements: {where}: atomic number {z} is outside 1..{MAX_Z - 1}")
        return z
    z = atomic_number(str(value))
    if z == 0:
        raise InputError(f"elements: {where}: {value!r} is not an element symbol")
    return z


def read_elements_file(path: str | os.PathLike) -> dict[str, int]:
    """Read an ``--elements`` file: one ``KEY ELEMENT`` pair per line.

    ``KEY`` is an atom name (``ZN``), ``RESNAME:NAME`` (``HEM:FE``) or ``type:TYPE`` (``type:3``,
    for files without names such as LAMMPS data); ``ELEMENT`` a symbol (``Zn``), an atomic
    number, or ``virtual`` (``-``) for a massless site to leave out. ``#`` starts a comment.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read elements file {path}: {exc.strerror or exc}") from None
    table: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.split()
        if len(parts) != 2:
            raise InputError(f"{path}:{number}: expected 'KEY ELEMENT' (e.g. 'ZN Zn' or "
                             f"'type:3 O'), got {line.strip()!r}")
        value = int(parts[1]) if parts[1].lstrip("-").isdigit() else parts[1]
        table[_key(parts[0])] = _parse_value(value, f"{path}:{number}")
    return table


# ----------------------------------------------------------------------------------- resolver
@dataclass
class Resolution:
    """Elements of every atom of a topology.

    Attributes
    ----------
    z : ndarray, shape (N,), int64
        Atomic numbers (0 where not an atom: virtual, coarse-grained or unresolved).
    kind : ndarray, shape (N,), int8
        :data:`ATOM`, :data:`VIRTUAL`, :data:`COARSE`, :data:`COARSE_GEOMETRY` or
        :data:`UNRESOLVED`.
    solvent : ndarray, shape (N,), bool
        Atoms of water and monatomic-ion residues (``select="solute"`` leaves them out).
    overruled : ndarray, shape (N,), int64
        The element the file stored (or mdtraj gave), where the atom's names overruled it
        (``ALA:CA`` stored as calcium; ``Du1`` stored as hydrogen): its atomic number, else 0.
    coarse_note : str
        Why particles are :data:`COARSE_GEOMETRY` (their spacing), for the message.
    """

    z: np.ndarray
    kind: np.ndarray
    solvent: np.ndarray
    overruled: np.ndarray | None = None
    coarse_note: str = ""


def _table(res: np.ndarray, names: np.ndarray) -> np.ndarray:
    """:func:`table_element` of every atom, shape (N, 3): kind, Z, solvent (one look-up per
    distinct pair)."""
    pairs, inverse = np.unique(np.char.add(np.char.add(res, "\x1f"), names), return_inverse=True)
    looked = np.array([table_element(*p.split("\x1f", 1)) for p in pairs],
                      dtype=np.int64).reshape(-1, 3)
    return looked[inverse.reshape(-1)]


def _names_agree(name: str, z: int) -> bool:
    """Whether an element is not contradicted by the atom name: the name begins with its
    symbol, or names no element at all (``A0``, ``opls_135``; ``B1`` names boron)."""
    lead = _lead(name)
    if lead.startswith(symbol(z).upper()):
        return True
    if _TYPE_NAME.match(lead):
        return True
    return atomic_number(lead[:2]) == 0 and atomic_number(lead[:1]) == 0


def resolve_elements(names: Sequence[str] | None, resnames: Sequence[str] | None,
                     resindices: np.ndarray, *, trusted: np.ndarray | None = None,
                     hint: np.ndarray | None = None, virtual: np.ndarray | None = None,
                     types: Sequence[str] | None = None,
                     override: ElementOverride | None = None, source: str = "input",
                     positions: np.ndarray | None = None) -> Resolution:
    """Resolve the element of every atom (rules in the module docstring).

    Parameters
    ----------
    names, resnames : sequence of str, shape (N,), optional
        Atom and residue names (``None`` if the topology has none, e.g. LAMMPS data).
    resindices : ndarray of int, shape (N,)
        Residue of every atom (groups coarse-grained beads by residue).
    trusted : ndarray of int, shape (N,), optional
        Atomic numbers the file stores (0 where it has none).
    hint : ndarray of int, shape (N,), optional
        A toolkit's own elements, possibly guessed; used only as described above.
    virtual : ndarray of bool, shape (N,), optional
        Atoms the topology marks as virtual (massless, or a virtual element).
    types : sequence of str, optional
        Atom types, for ``type:`` override keys.
    override : ElementOverride, optional
        The user's elements.
    source : str
        What the atoms come from, for messages.
    positions : ndarray, shape (N, 3), optional
        One frame in Å, to recognise coarse-grained models by their spacing (not done when the
        user gives elements).
    """
    from .element_context import (
        contradicted_protein_elements,
        drude_particles,
        lone_ions_stored_by_first_letter,
        mark_coarse_geometry,
        nucleotide_names_without_nucleotide,
        single_atom_elements,
        upper_names,
    )

    n = len(resindices)
    resindices = np.asarray(resindices)
    z = np.zeros(n, dtype=np.int64)
    kind = np.full(n, UNRESOLVED, dtype=np.int8)
    overruled = np.zeros(n, dtype=np.int64)
    have_names = names is not None
    names_a = np.asarray(names, dtype=str) if have_names else np.full(n, "", dtype=str)
    res_a = np.asarray(resnames, dtype=str) if resnames is not None else np.full(n, "",
                                                                                  dtype=str)
    res_given = res_a  # for the user's RESNAME:NAME keys and residue-kind exclusions
    table = np.zeros((n, 3), dtype=np.int64)
    table[:, 0] = UNRESOLVED
    lone = np.zeros(n, dtype=np.int64)
    if have_names and n:
        # a residue named like a nucleotide without nucleic-acid atoms is any other residue
        plain = nucleotide_names_without_nucleotide(names_a, res_a, resindices,
                                                    NUCLEIC_RESIDUES)
        res_a = np.where(plain, "", res_a)
        table = _table(res_a, names_a)
        lone = single_atom_elements(names_a, res_given, resindices, _BIOPOLYMER_OR_WATER)
    # 3. elements the file stores
    if trusted is not None:
        ok = (trusted > 0) & (trusted < MAX_Z)
        z[ok], kind[ok] = trusted[ok], ATOM
    # 2. virtual sites (massless marks, dummy and Drude names) win over stored elements
    dummy = np.zeros(n, dtype=bool)
    if have_names and n:
        dummy = (table[:, 0] == VIRTUAL) | drude_particles(names_a, resindices)
    if virtual is not None and not np.all(virtual):  # all "massless": no information
        dummy |= np.asarray(virtual, dtype=bool)
    overruled[dummy & (kind == ATOM)] = z[dummy & (kind == ATOM)]
    z[dummy], kind[dummy] = 0, VIRTUAL
    if have_names and n:
        # a protein residue's atom names win over a stored element that contradicts them, and
        # a lone ion's name over a stored first letter (PT stored as P, as mdtraj writes it)
        if trusted is not None:
            wrong = contradicted_protein_elements(z, table[:, 1], names_a, res_a,
                                                  PROTEIN_RESIDUES) & (kind == ATOM)
            overruled[wrong], z[wrong] = z[wrong], table[wrong, 1]
            misread = lone_ions_stored_by_first_letter(z, lone, names_a, res_given) & \
                (kind == ATOM)
            overruled[misread], z[misread] = z[misread], lone[misread]
        # 4. coarse-grained residues (MARTINI bead names)
        upper = upper_names(names_a)
        cg_res = np.unique(resindices[np.isin(upper, list(CG_BEADS))])
        kind[np.isin(resindices, cg_res) & (kind == UNRESOLVED)] = COARSE
        # 5. the name table; a residue of one atom named by an element symbol is that element
        todo = kind == UNRESOLVED
        kind[todo], z[todo] = table[todo, 0], table[todo, 1]
        alone = np.where(~todo | (table[:, 2] == 1) | (table[:, 0] == VIRTUAL), 0, lone)
        z[alone > 0], kind[alone > 0] = alone[alone > 0], ATOM
    # 6. a toolkit's element where the table has no answer and the name does not contradict it
    if hint is not None and have_names:
        for i in np.flatnonzero((kind == UNRESOLVED) & (hint > 0)):
            if _names_agree(names_a[i], int(hint[i])):
                z[i], kind[i] = hint[i], ATOM
    # 1. the user's override
    if override is not None:
        assigned = _apply_override(override, z, kind, names_a if have_names else None,
                                   res_given, types, source)
        overruled[assigned] = 0
    solvent = table[:, 2].astype(bool) if have_names else np.zeros(n, dtype=bool)
    note = ""
    if positions is not None and override is None and n:
        note = mark_coarse_geometry(np.asarray(positions), z, kind, solvent,
                                    lone if have_names else None)
    return Resolution(z=z, kind=kind, solvent=solvent, overruled=overruled, coarse_note=note)


def _apply_override(override: ElementOverride, z, kind, names, resnames, types,
                    source) -> np.ndarray:
    """Apply the user's elements in place; return the mask of atoms they assigned."""
    n = z.shape[0]
    if override.per_atom is not None:
        values = override.per_atom
        if values.shape != (n,):
            raise InputError(f"elements has {values.shape[0]} entries but {source} has {n} "
                             "atoms (one element per atom, or a mapping by name)")
        assign = values
    else:
        assign = np.zeros(n, dtype=np.int64)
        table = override.by_key
        if types is not None:
            tkeys = np.char.add("type:", np.asarray(types, dtype=str))
            for key, value in table.items():
                if key.startswith("type:"):
                    assign[tkeys == key] = value
        if names is not None:
            upper = np.char.upper(np.char.strip(names))
            full = np.char.add(np.char.add(np.char.upper(np.char.strip(resnames)), ":"), upper)
            for key, value in table.items():
                if not key.startswith("type:") and ":" not in key:
                    assign[upper == key] = value
            for key, value in table.items():
                if ":" in key and not key.startswith("type:"):
                    assign[full == key] = value
        if table and not assign.any():
            raise InputError(f"elements: none of the keys {', '.join(sorted(table))} matches an "
                             f"atom of {source}")
    z[assign > 0], kind[assign > 0] = assign[assign > 0], ATOM
    z[assign < 0], kind[assign < 0] = 0, VIRTUAL
    return assign != 0
