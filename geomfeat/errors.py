"""Exceptions raised by geomfeat.

Every error a user can cause derives from :class:`GeomfeatError`, so the command line can print
it as one readable line while programming errors still surface as tracebacks.
"""

from __future__ import annotations


class GeomfeatError(Exception):
    """Base class of all errors caused by input, settings or environment."""


class UnknownModelError(GeomfeatError, KeyError):
    """A model name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsError(GeomfeatError):
    """A checkpoint could not be fetched, verified or loaded."""


class CheckpointMismatchError(WeightsError):
    """A checkpoint's tensors do not fit the architecture it is registered for."""


class InputError(GeomfeatError, ValueError):
    """Bad trajectory, topology, selection or coordinates."""


class InputWarning(UserWarning):
    """Input that geomfeat changed or left out on purpose (virtual sites, altlocs, a crystal
    cell), named in the message and recorded in the output's sidecar."""
