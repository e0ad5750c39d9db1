"""What ``geomfeat compare`` and ``geomfeat compare --select-features`` read from the command
line alike: the VAMPNet recipe, the report folder and the command's text.

Light at import (no torch, no deeptime), as :mod:`geomfeat.evaluate.cli`.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from ..errors import GeomfeatError
from .recipe import VAMPNetRecipe

__all__ = ["command_line", "recipe_from_args", "report_folder"]


def recipe_from_args(args: argparse.Namespace) -> VAMPNetRecipe:
    """The :class:`VAMPNetRecipe` of the ``VAMPNet recipe`` option group."""
    return VAMPNetRecipe(n_states=args.n_states, budget=args.budget, depth=args.depth,
                         token_lobe=args.token_lobe, batch_size=args.batch_size, lr=args.lr,
                         steps_per_epoch=args.steps_per_epoch, max_epochs=args.max_epochs,
                         patience=args.patience, lr_patience=args.lr_patience,
                         restarts=args.restarts)


def report_folder(args: argparse.Namespace) -> Path:
    """``-o OUT`` as a folder (it may not exist yet; it must not be a file)."""
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise GeomfeatError(f"-o {out}: exists and is not a folder")
    return out


def command_line(args: argparse.Namespace) -> str:
    """The command as typed (recorded in the report)."""
    return "geomfeat " + " ".join(shlex.quote(a) for a in getattr(args, "argv", []))
