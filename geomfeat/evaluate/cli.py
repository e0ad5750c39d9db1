"""``geomfeat compare``: argument parsing and the command (registered by :mod:`geomfeat.cli`).

``geomfeat compare TOP TRAJ [TRAJ ...] --lag 20ps 100ps -o report/``
    Compare feature sets (``--features``) for kinetic models on these trajectories with a
    train / validation / test protocol; writes ``report/compare.{json,md}`` and plots.

Only light modules are imported here; torch, deeptime and mdtraj load when the command runs.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from .._argtypes import fraction as _fraction
from .._argtypes import positive_float as _positive_float
from .._argtypes import positive_int as _positive_int
from ..errors import GeomfeatError

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``compare`` sub-command to ``geomfeat``'s sub-parsers."""
    from .features import DEFAULT_FEATURES
    from .recipe import VAMPNetRecipe

    d = VAMPNetRecipe()
    p = sub.add_parser(
        "compare", help="compare feature sets for kinetic models (VAMP-2 on held-out data)",
        description="Score feature sets (encoder readouts, distances, torsions, ...) by test "
                    "VAMP-2 of linear VAMP and VAMPNets on a train/validation/test split, over "
                    "several seeds, and compare each with a reference set seed by seed. "
                    "Writes OUT/NAME.json, OUT/NAME.md and plots.",
        epilog="Feature sets: MODEL[:graph|residue[:scalar|invariant[:last|all|0,2,5]]], "
               "distances, ca-distances, contacts, backbone-torsions, sidechain-torsions, "
               "torsions, npy:PATH ({stem} = trajectory name), and A+B concatenations.")
    p.add_argument("top", metavar="TOP", help="topology (PDB, GRO, PRMTOP, ... as mdtraj reads)")
    p.add_argument("trajs", nargs="+", metavar="TRAJ", help="trajectory files")
    p.add_argument("--lag", nargs="+", required=True, metavar="LAG",
                   help="lag times: 20ps, 0.1ns, 500fs or frames (after --stride)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="report folder")
    p.add_argument("--name", default="compare", help="file name stem of the report")
    p.add_argument("--features", nargs="+", default=list(DEFAULT_FEATURES), metavar="SPEC",
                   help=f"feature sets (default: {' '.join(DEFAULT_FEATURES)})")
    p.add_argument("--reference", default="distances",
                   help="feature set the others are compared with ('none': no comparison)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--split", choices=("block", "trajectory"), default="block")
    p.add_argument("--n-blocks", type=_positive_int, default=10, help="blocks per trajectory")
    p.add_argument("--val-fraction", type=_fraction, default=0.2)
    p.add_argument("--test-fraction", type=_fraction, default=0.2)
    p.add_argument("--stride", type=_positive_int, default=1, help="read every n-th frame")
    p.add_argument("--timestep", type=_positive_float, metavar="PS",
                   help="ps between frames of the files (for files without times)")
    p.add_argument("--select", default="heavy", help="atoms the encoders embed")
    p.add_argument("--reduce", choices=("sum", "mean"), default="sum")
    p.add_argument("--linear-k", type=_positive_int, default=None,
                   help="linear VAMP-2 for k = 1..K (default n_states - 1)")
    p.add_argument("--no-vampnet", action="store_true", help="linear VAMP only")
    g = p.add_argument_group("VAMPNet recipe (the same for every feature set)")
    g.add_argument("--n-states", type=_positive_int, default=d.n_states)
    g.add_argument("--budget", type=_positive_int, default=d.budget,
                   help="trainable parameters per lobe")
    g.add_argument("--depth", type=_positive_int, default=d.depth)
    g.add_argument("--token-lobe", choices=("mixer", "attention", "mlp"), default=d.token_lobe)
    g.add_argument("--batch-size", type=_positive_int, default=d.batch_size)
    g.add_argument("--lr", type=_positive_float, default=d.lr)
    g.add_argument("--steps-per-epoch", type=_positive_int, default=d.steps_per_epoch)
    g.add_argument("--max-epochs", type=_positive_int, default=d.max_epochs)
    g.add_argument("--patience", type=_positive_int, default=d.patience)
    g.add_argument("--lr-patience", type=_positive_int, default=d.lr_patience)
    g.add_argument("--restarts", type=_positive_int, default=d.restarts)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads")
    p.add_argument("--workers", type=_positive_int, default=1,
                   help="processes scoring the feature sets (default 1: on a busy machine one "
                        "process with torch's threads was faster, docs/benchmarks.md)")
    p.add_argument("--cache", default=None, help="folder of cached encoder readouts")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``geomfeat compare`` from parsed arguments; returns the exit status."""
    from ..download import quiet_downloads
    from .protocol import compare
    from .recipe import VAMPNetRecipe

    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise GeomfeatError(f"-o {out}: exists and is not a folder")
    if len(args.features) != len(set(args.features)):
        raise GeomfeatError(f"--features repeats a feature set: {' '.join(args.features)}")
    recipe = VAMPNetRecipe(n_states=args.n_states, budget=args.budget, depth=args.depth,
                           token_lobe=args.token_lobe, batch_size=args.batch_size, lr=args.lr,
                           steps_per_epoch=args.steps_per_epoch, max_epochs=args.max_epochs,
                           patience=args.patience, lr_patience=args.lr_patience,
                           restarts=args.restarts)
    with quiet_downloads(args.quiet):
        result = compare(
            args.top, args.trajs, args.lag, features=args.features,
            reference=None if args.reference.lower() == "none" else args.reference,
            seeds=args.seeds, split=args.split, n_blocks=args.n_blocks,
            val_fraction=args.val_fraction, test_fraction=args.test_fraction, stride=args.stride,
            timestep=args.timestep, n_linear=args.linear_k, vampnet=not args.no_vampnet,
            recipe=recipe, select=args.select, reduce=args.reduce, cache=args.cache,
            device=args.device, threads=args.threads, workers=args.workers, out=out,
            name=args.name,
            log=None if args.quiet else _stderr,
            command="geomfeat " + " ".join(shlex.quote(a) for a in getattr(args, "argv", [])))
    if not args.quiet:
        print(f"{out / args.name}.md: {len(result.feature_sets)} feature sets", file=sys.stderr)
    return 0


def _stderr(msg: str) -> None:
    import time

    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
