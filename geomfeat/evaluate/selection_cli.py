"""``geomfeat compare --select-features``: the selection's options and its run.

Kept apart from :mod:`~geomfeat.evaluate.cli` (which only adds the flag and hands over): the
selection reads ``compare``'s data, split, seed and VAMPNet options and adds its own.
"""

from __future__ import annotations

import argparse
import sys

from .._argtypes import positive_float as _positive_float
from .._argtypes import positive_int as _positive_int
from ..errors import GeomfeatError

__all__ = ["add_selection_arguments", "run_selection"]


def add_selection_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--select-features`` and its options to ``geomfeat compare``'s parser."""
    from .families import DEFAULT_MAX_DIMS

    g = p.add_argument_group(
        "feature selection (--select-features)",
        "Forward selection of feature families by validation VAMP-2 (linear VAMP of each "
        "family reduced by PCA, dimension chosen inside the training part; VAMPNets for the two "
        "finalists unless --no-vampnet); the test part scores the choice and the single "
        "families once. Writes OUT/NAME.{json,md} and OUT/NAME_features/*.npy. Uses the first "
        "--lag only.")
    g.add_argument("--select-features", action="store_true",
                   help="choose the best set of feature families instead of comparing --features")
    g.add_argument("--models", nargs="+", metavar="MODEL", default=None,
                   help="encoders whose readouts are candidates (default: every registered "
                        "model; 'none': no encoder)")
    g.add_argument("--families", nargs="+", metavar="SPEC", default=None,
                   help="candidate families instead of the catalogue (encoder readouts, "
                        "distances, Cα distances, contacts, torsions)")
    g.add_argument("--extra-families", nargs="+", metavar="SPEC", default=[],
                   help="further candidates, e.g. npy:PATH ({stem} = trajectory name)")
    g.add_argument("--max-dims", type=_positive_int, default=DEFAULT_MAX_DIMS,
                   help="budget: features per frame of a family; pair families above it are "
                        "subsampled, others left out")
    g.add_argument("--max-pca", type=_positive_int, default=256,
                   help="largest PCA dimension tried per family")
    g.add_argument("--max-set", type=_positive_int, default=4,
                   help="most families in the chosen set")
    g.add_argument("--noise", type=_positive_float, default=1.0,
                   help="add a family when its mean validation gain > NOISE × sd of its "
                        "per-seed gains")
    g.add_argument("--test-seed", type=int, default=0,
                   help="seed of the one test part")
    g.add_argument("--no-feature-files", action="store_true",
                   help="do not write the chosen set's features as .npy")


def run_selection(args: argparse.Namespace) -> int:
    """Run ``geomfeat compare --select-features`` from parsed arguments."""
    from .._threads import default_threads
    from ..download import quiet_downloads
    from .cli_args import command_line, recipe_from_args, report_folder
    from .protocol import log_line
    from .recipe import VAMPNetRecipe
    from .selection import select_features

    out = report_folder(args)
    if len(args.lag) > 1:
        raise GeomfeatError(f"--select-features chooses at one lag time; got --lag "
                            f"{' '.join(args.lag)}")
    import torch

    torch.set_num_threads(args.threads or default_threads())  # as plain compare
    models = args.models
    if models is not None and [m.lower() for m in models] == ["none"]:
        models = []
    recipe = None if args.no_vampnet else recipe_from_args(args)
    name = "select" if args.name == "compare" else args.name
    with quiet_downloads(args.quiet):
        result = select_features(
            args.top, args.trajs, args.lag[0], families=args.families, models=models,
            extra=args.extra_families, seeds=args.seeds, test_seed=args.test_seed,
            split=args.split, n_blocks=args.n_blocks, block=args.block,
            val_fraction=args.val_fraction, test_fraction=args.test_fraction,
            stride=args.stride, timestep=args.timestep,
            k=args.linear_k or VAMPNetRecipe().n_states - 1, noise=args.noise,
            max_set=args.max_set, max_dims=args.max_dims, max_pca=args.max_pca,
            vampnet=recipe,
            select=args.select, reduce=args.reduce, cache=args.cache, device=args.device,
            out=out, name=name, write_features=not args.no_feature_files,
            log=None if args.quiet else log_line, command=command_line(args))
    if not args.quiet:
        print(f"{out / name}.md: chosen {result.chosen}", file=sys.stderr)
    return 0
