"""The ``geomfeat`` command line.

``geomfeat embed TRAJ TOP -o OUT.npy``
    Embed a trajectory (any format MDAnalysis reads) and write ``OUT.npy`` plus ``OUT.json``.
``geomfeat embed A.xtc B.xtc ... --top TOP -o OUTDIR/``
    One output per trajectory, ``OUTDIR/A.npy``, ... Complete outputs are skipped (resume).
``geomfeat embed ... --workers N`` / ``--scheduler ADDRESS``
    The same on a local Dask cluster of N processes, or on an existing one.
``geomfeat models``
    List the registered encoders and whether each is cached, then local model cards.
``geomfeat pretrain DATA ... -o OUT``
    Denoising pre-training (see :mod:`geomfeat.pretrain.cli`).
``geomfeat compare TRAJ ... --top TOP --lag 20ps 100ps -o report/``
    Compare feature sets for kinetic models (see :mod:`geomfeat.evaluate.cli`).

Errors are printed as one line (``geomfeat: error: ...``) with a non-zero exit status, warnings
as one line each (``geomfeat: warning: ...``). Ctrl-C (exit status 130) and SIGTERM, which batch
schedulers send at a job's time limit (exit status 143), end a run alike: finished outputs are
kept, the hidden ``.partial`` files of unfinished ones are removed (a rerun embeds them from
their first frame), and the manifest records them as pending.
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

from ._argtypes import DefaultsFormatter
from ._argtypes import nonnegative_int as _nonnegative_int
from ._argtypes import positive_float as _positive_float
from ._argtypes import positive_int as _positive_int
from ._threads import default_threads
from ._version import __version__
from .download import cache_dir, is_cached
from .errors import GeomfeatError
from .interrupts import Terminated, interrupts_not_lost
from .output import check_destination
from .pooling import FEATURES, POOLS, REDUCES
from .pretrain.cli import add_parser as add_pretrain_parser
from .pretrain.cli import run as run_pretrain
from .registry import get_model_card, list_local_models, list_models

__all__ = ["main"]

#: ``--dtype`` choices, those of ``GeomFeaturizer(dtype=...)`` (kept here: no heavy imports).
DTYPES = ("float32", "float64", "tf32", "bfloat16", "float16")


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
        "embed", help="embed trajectories into .npy files", formatter_class=DefaultsFormatter,
        description="Embed TRAJ (read with TOP by MDAnalysis) into OUT.npy with a JSON sidecar "
                    "OUT.json; or several trajectories (--top TOP) into OUTDIR/<name>.npy. "
                    "Complete outputs made with the same settings are skipped (resume).")
    embed.add_argument("inputs", nargs="+", metavar="TRAJ [TOP]",
                       help="TRAJ TOP, or TRAJ [TRAJ ...] with --top")
    embed.add_argument("--top", metavar="TOP", help="topology shared by all trajectories")
    embed.add_argument("-o", "--output", required=True, metavar="OUT",
                       help="output .npy for one trajectory, else an output folder")
    embed.add_argument("--overwrite", action="store_true",
                       help="replace existing outputs made with other settings or from other "
                            "input files, unreadable ones, and files geomfeat did not make")
    embed.add_argument("--wait", action="store_true",
                       help="if another run is writing an output, wait for it instead of "
                            "failing at once")
    embed.add_argument("--model", default="visnet-denali",
                       help="registered encoder or model card .json (see 'geomfeat models')")
    embed.add_argument("--select", default="heavy",
                       help="'heavy' (default), 'all', 'solute' (no water or ions) or an "
                            "MDAnalysis selection string")
    embed.add_argument("--heavy", action="store_true",
                       help="leave hydrogens out of --select (e.g. --select protein --heavy), "
                            "decided on geomfeat's elements")
    embed.add_argument("--elements", metavar="FILE",
                       help="elements that override the topology's: a text file of 'KEY "
                            "ELEMENT' lines, KEY an atom name (ZN), RESNAME:NAME (HEM:FE) or "
                            "type:TYPE (type:3, e.g. LAMMPS data), ELEMENT a symbol, an atomic "
                            "number or 'virtual' (left out); '#' starts a comment")
    embed.add_argument("--allow-unseen-elements", action="store_true",
                       help="embed elements outside the model's pre-training set (OrbNet "
                            "Denali: H Li B C N O F Na Mg Si P S Cl K Ca Br I) instead of "
                            "refusing them; recorded in the sidecar")
    embed.add_argument("--pool", choices=POOLS, default="graph",
                       help="readout: one vector per frame (graph), per residue, per atom, or per "
                            "residue from its own neighbourhood (residue-local)")
    embed.add_argument("--reduce", choices=REDUCES, default="sum",
                       help="how atoms are pooled into graph and residue readouts")
    embed.add_argument("--features", choices=FEATURES, default="scalar",
                       help="scalar channels; invariant: also the norms of the pooled vector "
                            "channels; equivariant: scalars and the vectors' x, y, z rows")
    embed.add_argument("--layers", type=_layers, default="last", metavar="LAYERS",
                       help="interaction layers to read out: last (default), all, or 0-based "
                            "indices like 0,2,5 (negative from the end: --layers=-2,-1); "
                            "their channels are concatenated in that order")
    embed.add_argument("--start", type=_nonnegative_int, default=None, help="first frame")
    embed.add_argument("--stop", type=_nonnegative_int, default=None, help="frame to stop before")
    embed.add_argument("--stride", type=_positive_int, default=None, help="take every n-th frame")
    embed.add_argument("--batch-size", type=_positive_int, default=None,
                       help="frames per encoder batch (default: sized to --memory-budget)")
    embed.add_argument("--memory-budget", type=_positive_float, default=None, metavar="GIB",
                       help="GiB one batch may use (default 2 on CPU, 40%% of a GPU's memory)")
    embed.add_argument("--device", default=None,
                       help="cpu, cuda, cuda:N or mps (default: cuda if available)")
    embed.add_argument("--dtype", choices=DTYPES, default="float32",
                       help="encoder precision (output is float32); tf32, bfloat16 and float16 "
                            "are less accurate opt-in modes meant for GPUs (tf32 needs CUDA; "
                            "on the CPU bfloat16/float16 are several times slower than "
                            "float32, see docs/performance.md)")
    embed.add_argument("--no-pbc", dest="pbc", action="store_false",
                       help="ignore the unit cell (default: minimum-image neighbour lists when "
                            "the trajectory has one)")
    embed.add_argument("--no-unit-check", dest="check_units", action="store_false",
                       help="skip the check that the first frame's coordinates look like Å")
    embed.add_argument("-q", "--quiet", action="store_true",
                       help="no progress bar, no download messages, no summary line")
    dask = embed.add_argument_group("parallel runs (Dask)")
    dask.add_argument("--scheduler", metavar="ADDRESS",
                      help="run on an existing dask.distributed scheduler, e.g. tcp://host:8786")
    dask.add_argument("--workers", type=_positive_int, metavar="N",
                      help="start a local Dask cluster of N worker processes")
    dask.add_argument("--threads", type=_positive_int, metavar="N",
                      help="PyTorch threads per task (default: the cores this process may use "
                           "and other processes leave free, divided among the --workers; see "
                           "docs/performance.md). Outputs are bit for bit equal between runs "
                           "with equal --threads")
    dask.add_argument("--frames-per-task", type=_positive_int, metavar="N",
                      help="split trajectories into tasks of about N frames (default: one "
                           "task per trajectory)")

    sub.add_parser("models", help="list the registered encoders and whether each is cached")
    add_pretrain_parser(sub)
    from .evaluate.cli import add_parser as add_compare_parser

    add_compare_parser(sub)
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
    if args.threads is None:  # share the free cores of this machine between the workers
        args.threads = default_threads(divide=args.workers)
    # task errors reach the manifest and the one-line summary; no worker tracebacks on stderr
    with local_cluster(args.workers, silence_logs=logging.CRITICAL) as cluster, \
            Client(cluster) as client:
        if not args.quiet:
            print(f"Dask dashboard: {cluster.dashboard_link}", file=sys.stderr)
        yield client


def _embed(args: argparse.Namespace) -> int:
    from .cluster import embed_jobs
    from .devices import check_available, parse_device
    from .featurizer import GeomFeaturizer

    get_model_card(args.model)  # unknown model: fail before reading anything
    try:  # before reading anything; the workers of --scheduler may have GPUs this host lacks
        parse_device(args.device) if args.scheduler is not None else check_available(
            args.device)
    except GeomfeatError as exc:
        raise GeomfeatError(f"--device: {exc}") from None
    top, jobs, manifest = _jobs(args)
    elements = None
    if args.elements is not None:
        from .elements import read_elements_file

        elements = read_elements_file(args.elements)  # a bad file fails before any reading
    from .download import quiet_downloads

    with quiet_downloads(args.quiet):  # also when the featurizer fetches the weights
        featurizer = GeomFeaturizer(
            args.model, select=args.select, heavy=args.heavy, elements=elements,
            allow_unseen_elements=args.allow_unseen_elements, pool=args.pool,
            reduce=args.reduce, features=args.features, layers=args.layers,
            batch_size=args.batch_size, memory_budget=args.memory_budget,
            device=args.device, dtype=args.dtype, progress=False, pbc=args.pbc,
            check_units=args.check_units,
        )
        with _client(args) as client:
            result = embed_jobs(
                featurizer, jobs, top, start=args.start, stop=args.stop, stride=args.stride,
                overwrite=args.overwrite, client=client, frames_per_task=args.frames_per_task,
                threads=args.threads, progress=not args.quiet, manifest=manifest,
                wait=args.wait, option_style="cli",
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
    for card in list_local_models():  # model cards in <cache>/local-models
        hp = card.hyperparameters
        rows.append((card.name, card.architecture, str(hp.get("num_layers", "")),
                     str(card.hidden_channels), f"{card.cutoff:g}", "local", card.pretraining))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)), row[-1])
    print(f"\ncache: {cache_dir()}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``geomfeat`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command, for reports
    try:
        with interrupts_not_lost(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", module="MDAnalysis")
            warnings.showwarning = _one_line_warning
            from .evaluate.cli import run as _compare

            commands = {"embed": _embed, "models": _models, "pretrain": run_pretrain,
                        "compare": _compare}
            return commands[args.command](args)
    except GeomfeatError as exc:
        print(f"geomfeat: error: {exc}{_notes(exc)}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"geomfeat: error: {type(exc).__name__}: {exc}{_notes(exc)}", file=sys.stderr)
        return 1
    except Terminated as exc:
        print("geomfeat: terminated (SIGTERM); finished outputs kept, unfinished ones removed"
              f"{_notes(exc)}", file=sys.stderr)
        return 143
    except KeyboardInterrupt as exc:
        print(f"geomfeat: interrupted; finished outputs kept, unfinished ones removed"
              f"{_notes(exc)}", file=sys.stderr)
        return 130


def _notes(exc: BaseException) -> str:
    """The notes added to ``exc`` (e.g. a manifest that could not be written), on one line."""
    return "".join(f"; {note}" for note in getattr(exc, "__notes__", []))


_WARNED: set[str] = set()


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str,
                      lineno: int, file: Any = None, line: str | None = None) -> None:
    """Print a warning as one line, once per run (the same file is opened by several tasks)."""
    text = " ".join(str(message).split())
    if text not in _WARNED:
        _WARNED.add(text)
        print(f"geomfeat: warning: {text}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
