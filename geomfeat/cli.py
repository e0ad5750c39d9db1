"""The ``geomfeat`` command line.

``geomfeat embed TRAJ TOP -o OUT.npy``
    Embed a trajectory (any format MDAnalysis reads) and write ``OUT.npy`` plus ``OUT.json``.
``geomfeat models``
    List the registered encoders and whether each is cached.

Errors are printed as one line (``geomfeat: error: ...``) with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from ._version import __version__
from .download import cache_dir, is_cached
from .errors import GeomfeatError
from .pooling import FEATURES, POOLS, REDUCES
from .registry import get_model_card, list_models

__all__ = ["main"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``geomfeat``."""
    parser = argparse.ArgumentParser(
        prog="geomfeat",
        description="Embeddings of MD trajectories from frozen pre-trained geometric GNNs.",
    )
    parser.add_argument("--version", action="version", version=f"geomfeat {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    embed = sub.add_parser("embed", help="embed a trajectory into a .npy file",
                           description="Embed TRAJ (read with TOP by MDAnalysis) into OUT.npy, "
                                       "with a JSON sidecar OUT.json.")
    embed.add_argument("trajectory", metavar="TRAJ", help="trajectory file (xtc, dcd, trr, ...)")
    embed.add_argument("topology", metavar="TOP", help="topology file (pdb, gro, psf, prmtop, ...)")
    embed.add_argument("-o", "--output", required=True, metavar="OUT.npy",
                       help="output .npy (written atomically; sidecar OUT.json)")
    embed.add_argument("--model", default="visnet-denali",
                       help="registered encoder (see 'geomfeat models'; default visnet-denali)")
    embed.add_argument("--select", default="heavy",
                       help="'heavy' (default), 'all' or an MDAnalysis selection string")
    embed.add_argument("--pool", choices=POOLS, default="graph")
    embed.add_argument("--reduce", choices=REDUCES, default="sum")
    embed.add_argument("--features", choices=FEATURES, default="scalar")
    embed.add_argument("--start", type=_nonnegative_int, default=None, help="first frame")
    embed.add_argument("--stop", type=_nonnegative_int, default=None, help="frame to stop before")
    embed.add_argument("--stride", type=_positive_int, default=None, help="take every n-th frame")
    embed.add_argument("--batch-size", type=_positive_int, default=None,
                       help="frames per encoder batch (default: about 4096 atoms)")
    embed.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    embed.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                       help="encoder precision (output is float32)")
    embed.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    sub.add_parser("models", help="list the registered encoders and whether each is cached")
    return parser


def _embed(args: argparse.Namespace) -> int:
    from .featurizer import GeomFeaturizer
    from .output import sidecar_path, write_embeddings
    from .trajectory import load_universe

    get_model_card(args.model)  # unknown model: fail before reading anything
    if args.device is not None and args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise GeomfeatError(f"--device {args.device}: no CUDA device is available")
    featurizer = GeomFeaturizer(
        args.model, select=args.select, pool=args.pool, reduce=args.reduce,
        features=args.features, batch_size=args.batch_size, device=args.device,
        dtype=args.dtype, progress=not args.quiet,
    )
    universe = load_universe(args.trajectory, args.topology)
    reader = featurizer.reader(universe)
    out = write_embeddings(
        featurizer, reader, args.output, start=args.start, stop=args.stop, stride=args.stride,
        metadata={"trajectory": str(args.trajectory), "topology": str(args.topology)},
    )
    if not args.quiet:
        print(f"wrote {out} and {sidecar_path(out)}", file=sys.stderr)
    return 0


def _models(_: argparse.Namespace) -> int:
    rows = [("name", "architecture", "layers", "hidden", "cutoff/Å", "cached", "pre-training")]
    for name in list_models():
        card = get_model_card(name)
        hp = card.hyperparameters
        rows.append((name, card.architecture, str(hp.get("num_layers", "")),
                     str(card.hidden_channels), f"{card.cutoff:g}",
                     "yes" if is_cached(card) else "no", card.pretraining))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)), row[-1])
    print(f"\ncache: {cache_dir()}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``geomfeat`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", module="MDAnalysis")
    try:
        return {"embed": _embed, "models": _models}[args.command](args)
    except GeomfeatError as exc:
        print(f"geomfeat: error: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"geomfeat: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("geomfeat: interrupted; no partial output was left", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
