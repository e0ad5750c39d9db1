"""``geomfeat compare``: argument parsing and the command (registered by :mod:`geomfeat.cli`).

``geomfeat compare TRAJ [TRAJ ...] --top TOP --lag 20ps 100ps -o report/``
    Compare feature sets (``--features``) for kinetic models on these trajectories with a
    train / validation / test protocol; writes ``report/compare.{json,md}`` and plots.

Only light modules are imported here; torch, deeptime and mdtraj load when the command runs.
"""

from __future__ import annotations

import argparse
import sys

from .._argtypes import DefaultsFormatter
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
        formatter_class=DefaultsFormatter,
        description="Score feature sets (encoder readouts, distances, torsions, ...) by test "
                    "VAMP-2 of linear VAMP and VAMPNets on a train/validation/test split, over "
                    "several seeds, and compare each with a reference set seed by seed. "
                    "Writes OUT/NAME.json, OUT/NAME.md and plots.",
        epilog="Feature sets: MODEL[:graph|residue[:scalar|invariant[:last|all|0,2,5]]], "
               "distances, ca-distances, contacts, backbone-torsions, sidechain-torsions, "
               "torsions, npy:PATH ({stem} = trajectory name), and A+B concatenations. "
               "Encoder readouts are cached in --cache (default: $GEOMFEAT_EVAL_CACHE, else "
               "evaluate/ in geomfeat's cache folder, $GEOMFEAT_CACHE or ~/.cache/geomfeat).")
    p.add_argument("inputs", nargs="+", metavar="TRAJ",
                   help="trajectory files, with --top TOP (the older form TOP TRAJ [TRAJ ...], "
                        "topology first, still works)")
    p.add_argument("--top", metavar="TOP",
                   help="topology (PDB, GRO, PRMTOP, ... as mdtraj reads; without --top: the "
                        "first positional argument)")
    p.add_argument("--lag", nargs="+", required=True, metavar="LAG",
                   help="lag times: 20ps, 0.1ns, 500fs or frames (after --stride)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="report folder")
    p.add_argument("--name", default="compare", help="file name stem of the report")
    p.add_argument("--features", nargs="+", default=list(DEFAULT_FEATURES), metavar="SPEC",
                   help="feature sets (spec strings: see below; default: "
                        f"{' '.join(DEFAULT_FEATURES)})")
    p.add_argument("--reference", default="distances",
                   help="feature set the others are compared with ('none': no comparison)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], metavar="SEED",
                   help="one split and VAMPNet initialisation per seed (no repeats)")
    p.add_argument("--split", choices=("block", "trajectory"), default="block",
                   help="deal contiguous blocks or whole trajectories to train / validation / "
                        "test")
    blocks = p.add_mutually_exclusive_group()
    blocks.add_argument("--block", metavar="TIME",
                        help="block length: 200ps, 1ns or frames; each trajectory is cut into "
                             "equal blocks at least this long, a shorter one is kept whole "
                             "(default: the longer of 5 x the longest lag and the longest "
                             "trajectory / 10)")
    blocks.add_argument("--n-blocks", type=_positive_int, metavar="N",
                        help="instead of --block: N blocks per trajectory (fewer where a "
                             "block would be shorter than the longest lag + 1)")
    p.add_argument("--val-fraction", type=_fraction, default=0.2,
                   help="fraction of the blocks (or trajectories) for validation")
    p.add_argument("--test-fraction", type=_fraction, default=0.2,
                   help="fraction of the blocks (or trajectories) for test")
    p.add_argument("--stride", type=_positive_int, default=1, help="read every n-th frame")
    p.add_argument("--timestep", type=_positive_float, metavar="PS",
                   help="ps between frames of the files (default: read from the files)")
    p.add_argument("--select", default="heavy", help="atoms the encoders embed")
    p.add_argument("--reduce", choices=("sum", "mean"), default="sum",
                   help="pooling of atoms into graph and residue readouts")
    p.add_argument("--linear-k", type=_positive_int, default=None, metavar="K",
                   help="linear VAMP-2 for k = 1..K (default: --n-states - 1)")
    p.add_argument("--no-vampnet", action="store_true", help="linear VAMP only")
    g = p.add_argument_group("VAMPNet recipe (the same for every feature set)")
    g.add_argument("--n-states", type=_positive_int, default=d.n_states,
                   help="softmax outputs of a lobe (VAMP-2 at most this)")
    g.add_argument("--budget", type=_positive_int, default=d.budget,
                   help="trainable parameters per lobe")
    g.add_argument("--depth", type=_positive_int, default=d.depth,
                   help="lobe depth (hidden layers or blocks)")
    g.add_argument("--token-lobe", choices=("mixer", "attention", "mlp"), default=d.token_lobe,
                   help="lobe for token sets (residue readouts)")
    g.add_argument("--batch-size", type=_positive_int, default=d.batch_size,
                   help="time-lagged pairs per optimizer step")
    g.add_argument("--lr", type=_positive_float, default=d.lr, help="Adam learning rate")
    g.add_argument("--steps-per-epoch", type=_positive_int, default=d.steps_per_epoch,
                   help="optimizer steps between two validation scores")
    g.add_argument("--max-epochs", type=_positive_int, default=d.max_epochs,
                   help="most epochs per fit")
    g.add_argument("--patience", type=_positive_int, default=d.patience,
                   help="stop after this many epochs without a better validation score")
    g.add_argument("--lr-patience", type=_positive_int, default=d.lr_patience,
                   help="halve the learning rate after this many epochs without improvement")
    g.add_argument("--restarts", type=_positive_int, default=d.restarts,
                   help="initialisations per fit; the best by validation is kept")
    p.add_argument("--device", default=None,
                   help="cpu, cuda, cuda:N or mps (default: cuda if available)")
    p.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                   help="torch CPU threads (default: the free cores)")
    p.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                   help="processes scoring the feature sets (on a busy machine one process "
                        "with torch's threads was faster: docs/benchmarks.md)")
    p.add_argument("--cache", default=None, metavar="DIR",
                   help="folder of cached encoder readouts (default: $GEOMFEAT_EVAL_CACHE, else "
                        "$GEOMFEAT_CACHE/evaluate)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bars or messages (warnings and errors remain)")
    from .selection_cli import add_selection_arguments

    add_selection_arguments(p)
    return p


def _top_and_trajectories(args: argparse.Namespace) -> tuple[str, list[str]]:
    """``TRAJ... --top TOP`` (as ``embed`` and ``pretrain``), or the older ``TOP TRAJ...``."""
    if args.top is not None:
        return args.top, list(args.inputs)
    if len(args.inputs) < 2:
        raise GeomfeatError("give TRAJ [TRAJ ...] --top TOP (or TOP TRAJ [TRAJ ...])")
    return args.inputs[0], list(args.inputs[1:])


def run(args: argparse.Namespace) -> int:
    """Run ``geomfeat compare`` from parsed arguments; returns the exit status."""
    from .._threads import default_threads
    from ..download import quiet_downloads
    from .cli_args import command_line, recipe_from_args, report_folder
    from .protocol import compare, log_line

    top, trajs = args.top, args.trajs = _top_and_trajectories(args)
    if getattr(args, "select_features", False):
        from .selection_cli import run_selection

        return run_selection(args)
    out = report_folder(args)
    if len(args.features) != len(set(args.features)):
        raise GeomfeatError(f"--features repeats a feature set: {' '.join(args.features)}")
    recipe = recipe_from_args(args)
    with quiet_downloads(args.quiet):
        result = compare(
            top, trajs, args.lag, features=args.features,
            reference=None if args.reference.lower() == "none" else args.reference,
            seeds=args.seeds, split=args.split, block=args.block, n_blocks=args.n_blocks,
            val_fraction=args.val_fraction, test_fraction=args.test_fraction, stride=args.stride,
            timestep=args.timestep, n_linear=args.linear_k, vampnet=not args.no_vampnet,
            recipe=recipe, select=args.select, reduce=args.reduce, cache=args.cache,
            device=args.device, threads=args.threads or default_threads(),
            workers=args.workers, out=out, name=args.name,
            log=None if args.quiet else log_line, progress=not args.quiet,
            command=command_line(args))
    if not args.quiet:
        print(f"{out / args.name}.md: {len(result.feature_sets)} feature sets", file=sys.stderr)
    return 0
