"""Argument types shared by the ``geomfeat`` sub-commands (embed, pretrain, compare).

Each turns a command-line string into a checked number or raises
:class:`argparse.ArgumentTypeError`, which argparse prints as one line naming the option.
"""

from __future__ import annotations

import argparse
import math

__all__ = ["DefaultsFormatter", "fraction", "nonnegative_int", "positive_float", "positive_int"]


def _integer(text: str, minimum: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help formatter of every sub-command: adds "(default: ...)" to an option's help, unless the
    help already states its default in words or there is none to show (``None``, a flag)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text or action.nargs == 0  # a flag: its help says what it does
                or action.default in (None, argparse.SUPPRESS)):
            return text
        return super()._get_help_string(action)


def positive_int(text: str) -> int:
    """An integer ≥ 1."""
    return _integer(text, 1, "a positive integer")


def nonnegative_int(text: str) -> int:
    """An integer ≥ 0."""
    return _integer(text, 0, "an integer >= 0")


def positive_float(text: str) -> float:
    """A finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def fraction(text: str) -> float:
    """A number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}")
    return value
