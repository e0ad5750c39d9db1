"""The ``geomfeat`` command line.

``geomfeat embed TRAJ TOP -o OUT.npy``
    Embed a trajectory (any format MDAnalysis reads) and write ``OUT.npy`` plus ``OUT.json``.
``geomfeat embed A.xtc B.xtc ... --top TOP -o OUTDIR/``
    One output per trajectory, ``OUTDIR/A.npy``, ... Complete outputs are skipped (resume).
``geomfeat embed ... --workers N`` / ``--scheduler ADDRESS``
    The same on a local Dask cluster of N processes, or on an existing one.
``geomfeat models``
    List the registered encoders and whether each is cached.

Errors are printed as one line (``geomfeat: error: ...``) with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ._version import __version__
from .download import cache_dir, is_cached
from .errors import GeomfeatError
from .output import check_destination
from .pooling import FEATURES, POOLS, REDUCES
from .registry import get_model_card, list_models

__all__ = ["main"]

#: ``--dtype`` choices, those of ``GeomFeaturizer(dtype=...)`` (kept here: no heavy imports).
DTYPES = ("float32", "float64", "tf32", "bfloat16", "float16")


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


def _layers(text: str) -> str | list[int]:
    """``--layers``: ``last``, ``all`` or comma-separated layer indices such as ``0,2,5``."""
    if text in ("last", "all"):
        return text
    try:
        return [int(item) for item in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 'last', 'all' or comma-separated layer indices like 0,2,5, got {text!r}"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``geomfeat``."""
    parser = argparse.ArgumentParser(
        prog="geomfeat",
        description="Embeddings of MD trajectories from frozen pre-trained geometric GNNs.",
    )
    parser.add_argument("--version", action="version", version=f"geomfeat {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    embed = sub.add_parser(
        "embed", help="embed trajectories into .npy files",
        description="Embed TRAJ (read with TOP by MDAnalysis) into OUT.npy with a JSON sidecar "
                    "OUT.json; or several trajectories (--top TOP) into OUTDIR/<name>.npy. "
                    "Complete outputs made with the same settings are skipped (resume).")
    embed.add_argument("inputs", nargs="+", metavar="TRAJ [TOP]",
                       help="TRAJ TOP, or TRAJ [TRAJ ...] with --top")
    embed.add_argument("--top", metavar="TOP", help="topology shared by all trajectories")
    embed.add_argument("-o", "--output", required=True, metavar="OUT",
                       help="output .npy for one trajectory, else an output folder")
    embed.add_argument("--overwrite", action="store_true",
                       help="replace outputs that were made with other settings")
    embed.add_argument("--model", default="visnet-denali",
                       help="registered encoder (see 'geomfeat models'; default visnet-denali)")
    embed.add_argument("--select", default="heavy",
                       help="'heavy' (default), 'all' or an MDAnalysis selection string")
    embed.add_argument("--pool", choices=POOLS, default="graph")
    embed.add_argument("--reduce", choices=REDUCES, default="sum")
    embed.add_argument("--features", choices=FEATURES, default="scalar")
    embed.add_argument("--layers", type=_layers, default="last", metavar="LAYERS",
                       help="interaction layers to read out: last (default), all, or 0-based "
                            "indices like 0,2,5 (negative from the end: --layers=-2,-1); "
                            "their channels are concatenated in that order")
    embed.add_argument("--start", type=_nonnegative_int, default=None, help="first frame")
    embed.add_argument("--stop", type=_nonnegative_int, default=None, help="frame to stop before")
    embed.add_argument("--stride", type=_positive_int, default=None, help="take every n-th frame")
    embed.add_argument("--batch-size", type=_positive_int, default=None,
                       help="frames per encoder batch (default: sized to --memory-budget)")
    embed.add_argument("--memory-budget", type=float, default=None, metavar="GIB",
                       help="GiB one batch may use (default 2 on CPU, 40%% of a GPU's memory)")
    embed.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    embed.add_argument("--dtype", choices=DTYPES, default="float32",
                       help="encoder precision (output is float32); tf32, bfloat16 and float16 "
                            "are faster, less accurate opt-in modes (see docs/performance.md)")
    embed.add_argument("--no-pbc", dest="pbc", action="store_false",
                       help="ignore the unit cell (default: minimum-image neighbour lists when "
                            "the trajectory has one)")
    embed.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    dask = embed.add_argument_group("parallel runs (Dask)")
    dask.add_argument("--scheduler", metavar="ADDRESS",
                      help="run on an existing dask.distributed scheduler, e.g. tcp://host:8786")
    dask.add_argument("--workers", type=_positive_int, metavar="N",
                      help="start a local Dask cluster of N worker processes")
    dask.add_argument("--threads", type=_positive_int, metavar="N",
                      help="PyTorch threads per task (default: the cores divided among the "
                           "--workers; all cores for --scheduler or a serial run). Outputs are "
                           "bit for bit equal between runs with equal --threads")
    dask.add_argument("--frames-per-task", type=_positive_int, metavar="N",
                      help="split trajectories into tasks of about N frames (default: one "
                           "task per trajectory)")

    sub.add_parser("models", help="list the registered encoders and whether each is cached")
    return parser


def _jobs(args: argparse.Namespace) -> tuple[str, list[tuple[Path, Path]], Path | None]:
    """(topology, [(trajectory, output), ...], manifest or None) from the command line."""
    from .cluster import MANIFEST_NAME, output_paths

    if args.top is None:
        if len(args.inputs) != 2:
            raise GeomfeatError("give TRAJ TOP, or several trajectories with --top TOP")
        trajectories, top = [args.inputs[0]], args.inputs[1]
    else:
        trajectories, top = args.inputs, args.top
    out = Path(args.output)
    if len(trajectories) == 1 and out.suffix:
        check_destination(out)  # a file: OUT.npy in an existing folder
        return top, [(Path(trajectories[0]), out)], None
    if out.suffix == ".npy":
        raise GeomfeatError(f"-o {out}: several trajectories need an output folder, not a file")
    if not out.parent.is_dir():
        raise GeomfeatError(f"output folder does not exist: {out.parent}")
    jobs = output_paths(trajectories, out)
    out.mkdir(exist_ok=True)
    return top, jobs, out / MANIFEST_NAME


@contextmanager
def _client(args: argparse.Namespace) -> Iterator[Any]:
    """A Dask client for --scheduler / --workers, else ``None`` (run here)."""
    if args.scheduler is None and args.workers is None:
        yield None
        return
    if args.scheduler is not None and args.workers is not None:
        raise GeomfeatError("give --scheduler or --workers, not both")
    try:
        from distributed import Client

        from .cluster import local_cluster
    except ImportError:
        raise GeomfeatError("--scheduler and --workers need Dask: "
                            "pip install 'geomfeat[dask]'") from None
    if args.scheduler is not None:
        with Client(args.scheduler) as client:  # waits distributed.comm.timeouts.connect
            yield client
        return
    if args.threads is None:  # share this machine's cores between the workers
        import torch

        args.threads = max(1, torch.get_num_threads() // args.workers)
    # task errors reach the manifest and the one-line summary; no worker tracebacks on stderr
    with local_cluster(args.workers, silence_logs=logging.CRITICAL) as cluster, \
            Client(cluster) as client:
        if not args.quiet:
            print(f"Dask dashboard: {cluster.dashboard_link}", file=sys.stderr)
        yield client


def _embed(args: argparse.Namespace) -> int:
    from .cluster import embed_jobs
    from .featurizer import GeomFeaturizer

    get_model_card(args.model)  # unknown model: fail before reading anything
    if args.device is not None and args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available() and args.scheduler is None:
            raise GeomfeatError(f"--device {args.device}: no CUDA device is available")
    top, jobs, manifest = _jobs(args)
    featurizer = GeomFeaturizer(
        args.model, select=args.select, pool=args.pool, reduce=args.reduce,
        features=args.features, layers=args.layers,
        batch_size=args.batch_size, memory_budget=args.memory_budget,
        device=args.device, dtype=args.dtype, progress=False, pbc=args.pbc,
    )
    with _client(args) as client:
        result = embed_jobs(
            featurizer, jobs, top, start=args.start, stop=args.stop, stride=args.stride,
            overwrite=args.overwrite, client=client, frames_per_task=args.frames_per_task,
            threads=args.threads, progress=not args.quiet, manifest=manifest,
        )
    if not args.quiet:
        where = jobs[0][1] if len(jobs) == 1 else Path(args.output)
        print(f"{where}: {result.count('written')} written, {result.count('complete')} "
              "already complete", file=sys.stderr)
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
