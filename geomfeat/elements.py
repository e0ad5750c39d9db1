"""Atomic numbers from topologies.

Elements come from the topology; where it has none (GRO files, many PSFs) they are guessed from
atom names/types with MDAnalysis's guesser. They are never inferred from masses, which hydrogen
mass repartitioning breaks (a 3 amu hydrogen is not lithium).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np

from .errors import InputError

__all__ = ["MAX_Z", "atomic_number", "check_atomic_numbers", "guess_atomic_number"]

#: The encoders' embedding tables have 100 rows: atomic numbers must lie in 1..99.
MAX_Z = 100


#: Element symbols in order of atomic number (index 0 is a placeholder).
_SYMBOLS = (
    "X H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge "
    "As Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu "
    "Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu "
    "Am Cm Bk Cf Es Fm Md No Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og"
).split()


@cache
def _symbol_table() -> dict[str, int]:
    return {symbol.upper(): z for z, symbol in enumerate(_SYMBOLS) if z > 0}


def atomic_number(symbol: str) -> int:
    """Atomic number of an element symbol (case-insensitive); 0 if unknown or empty."""
    return _symbol_table().get(str(symbol).strip().upper(), 0)


@cache
def _guesser():
    from MDAnalysis.guesser.default_guesser import DefaultGuesser

    return DefaultGuesser(None)


def guess_atomic_number(name: str) -> int:
    """Guess the atomic number from an atom name or type (e.g. ``"CA"`` → 6); 0 if unknown."""
    return atomic_number(_guesser().guess_atom_element(str(name)))


def check_atomic_numbers(z: np.ndarray, labels: Sequence[str], source: str) -> None:
    """Raise :class:`InputError` naming every atom whose element the encoders cannot take.

    Parameters
    ----------
    z : ndarray, shape (N,)
        Atomic numbers (0 = unknown element).
    labels : sequence of str
        A readable label per atom (residue, name, index), used in the message.
    source : str
        What the atoms came from (file or object), used in the message.
    """
    bad = np.flatnonzero((z <= 0) | (z >= MAX_Z))
    if bad.size == 0:
        return
    shown = ", ".join(
        f"{labels[i]} ({'no element' if z[i] <= 0 else f'Z={z[i]}'})" for i in bad[:5]
    )
    more = f" and {bad.size - 5} more" if bad.size > 5 else ""
    raise InputError(
        f"{bad.size} selected atom(s) of {source} have no element the encoders accept "
        f"(1 <= Z < {MAX_Z}): {shown}{more}; select them out (e.g. select='heavy' or an "
        f"explicit selection) or fix the topology's elements"
    )
