"""The periodic table as the encoders see it, and the kinds of topology particles.

Atomic numbers and element symbols (:func:`atomic_number`, :func:`symbol`), the largest atomic
number an encoder embeds (:data:`MAX_Z`) and the kinds :func:`geomfeat.elements.resolve_elements`
sorts particles into. A module of its own so that the element rules
(:mod:`geomfeat.elements`, :mod:`geomfeat.element_context`) can share them without importing
each other; :mod:`geomfeat.elements` re-exports every name.
"""

from __future__ import annotations

from functools import cache

import numpy as np

__all__ = ["ATOM", "COARSE", "COARSE_GEOMETRY", "MAX_Z", "UNRESOLVED", "VIRTUAL", "atomic_number",
           "symbol"]

#: The encoders' embedding tables have 100 rows: atomic numbers must lie in 1..99.
MAX_Z = 100

#: Kinds of atoms found by :func:`resolve_elements` (``COARSE``: by bead names,
#: ``COARSE_GEOMETRY``: by spacing).
ATOM, VIRTUAL, COARSE, UNRESOLVED, COARSE_GEOMETRY = 0, 1, 2, 3, 4

#: Element symbols in order of atomic number (index 0 is a placeholder).
_SYMBOLS = (
    "X H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge "
    "As Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu "
    "Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu "
    "Am Cm Bk Cf Es Fm Md No Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og"
).split()


@cache
def _symbol_table() -> dict[str, int]:
    return {s.upper(): z for z, s in enumerate(_SYMBOLS) if z > 0}


def atomic_number(sym: str | int) -> int:
    """Atomic number of an element symbol (case-insensitive) or number; 0 if unknown or empty."""
    if isinstance(sym, (int, np.integer)):
        return int(sym) if 0 < int(sym) < len(_SYMBOLS) else 0
    return _symbol_table().get(str(sym).strip().upper(), 0)


def symbol(z: int) -> str:
    """Element symbol of atomic number ``z`` (``"X"`` for 0 or out of range)."""
    return _SYMBOLS[z] if 0 < z < len(_SYMBOLS) else "X"
