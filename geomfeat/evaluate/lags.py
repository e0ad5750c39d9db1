"""Lag times with units: ``"20ps"``, ``"0.1 ns"``, ``"500fs"`` or plain frames (``"5"``).

A lag given in time units is converted to frames with the time between the frames *as
analysed* (the trajectory's own time step × the stride). The time step is read from the
trajectory (:func:`timestep_ps`); when the file does not record one, a lag with units is an
error, not a guess.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from ..errors import GeomfeatError

__all__ = ["UNITS_PS", "Lag", "parse_lag", "parse_lags", "timestep_ps"]

#: Picoseconds per unit.
UNITS_PS = {"fs": 1e-3, "ps": 1.0, "ns": 1e3, "us": 1e6, "µs": 1e6}

_LAG = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-zµ]*)\s*$")


class Lag(int):
    """A lag time in frames that remembers how it was written (``Lag(2, "20ps", 20.0)``)."""

    text: str
    ps: float | None

    def __new__(cls, frames: int, text: str, ps: float | None) -> Lag:
        obj = super().__new__(cls, frames)
        obj.text, obj.ps = text, ps
        return obj

    def __repr__(self) -> str:
        return f"Lag({int(self)}, {self.text!r}, {self.ps})"

    def as_dict(self) -> dict:
        """JSON-ready ``{"frames", "text", "ps"}``."""
        return {"frames": int(self), "text": self.text, "ps": self.ps}


def parse_lag(text: str | int, dt_ps: float | None, what: str = "lag") -> Lag:
    """Convert one lag time to frames.

    Parameters
    ----------
    text : str or int
        ``"20ps"``, ``"0.1ns"``, ``"500 fs"``, ``"1us"`` or a whole number of frames (``"5"``,
        ``5``).
    dt_ps : float or None
        Time between analysed frames in ps (``None``: unknown, then only frames are accepted).
    what : str
        What the time is, for error messages (``"lag"``, ``"block"``).

    Returns
    -------
    Lag
        An ``int`` (frames, ≥ 1) with ``.text`` and ``.ps``.

    Raises
    ------
    GeomfeatError
        Unknown unit, a lag that is not a whole multiple of the frame step (to 1e-6 relative),
        a lag below one frame, or units with an unknown time step.
    """
    raw = str(text)
    m = _LAG.match(raw)
    if not m:
        raise GeomfeatError(f"{what} {raw!r}: expected a number of frames or a time such as "
                            "20ps")
    value, unit = float(m.group(1)), m.group(2)
    if not unit:
        if value != int(value) or value < 1:
            raise GeomfeatError(f"{what} {raw!r}: a time in frames must be a positive integer")
        frames = int(value)
        return Lag(frames, raw.strip(), None if dt_ps is None else frames * dt_ps)
    if unit not in UNITS_PS:
        raise GeomfeatError(f"{what} {raw!r}: unknown unit {unit!r}; use fs, ps, ns or us")
    if dt_ps is None:
        raise GeomfeatError(f"{what} {raw!r}: the trajectory does not record its time step; "
                            f"give the {what} in frames or the time step (--timestep)")
    ps = value * UNITS_PS[unit]
    frames = ps / dt_ps
    if abs(frames - round(frames)) > 1e-6 * max(1.0, frames):
        raise GeomfeatError(f"{what} {raw!r} = {ps:g} ps is not a whole number of frames of "
                            f"{dt_ps:g} ps")
    if round(frames) < 1:
        raise GeomfeatError(f"{what} {raw!r} = {ps:g} ps is shorter than one frame "
                            f"({dt_ps:g} ps)")
    return Lag(round(frames), raw.strip(), ps)


def parse_lags(texts: Sequence[str | int], dt_ps: float | None) -> list[Lag]:
    """:func:`parse_lag` for each item; duplicates (same frames) are an error."""
    lags = [parse_lag(t, dt_ps) for t in texts]
    if len({int(lag) for lag in lags}) != len(lags):
        raise GeomfeatError(f"lags {list(texts)} repeat the same number of frames")
    return lags


def timestep_ps(times_ps: np.ndarray, source: str = "trajectory") -> float | None:
    """The constant time between frames, from the frames' times in ps.

    Returns ``None`` when it is unknown: fewer than two frames, times all zero, or steps that
    are not constant (to 1e-3 relative; xtc stores times in float32).
    """
    t = np.asarray(times_ps, dtype=np.float64)
    if len(t) < 2:
        return None
    steps = np.diff(t)
    dt = float(np.median(steps))
    if not np.isfinite(dt) or dt <= 0:
        return None
    if np.max(np.abs(steps - dt)) > 1e-3 * dt + 1e-6:
        return None
    return dt
