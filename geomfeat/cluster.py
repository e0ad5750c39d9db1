"""Embedding many trajectories: in this process, or as tasks on a Dask cluster.

:func:`embed_many` writes one ``.npy`` (plus its JSON sidecar, see :mod:`geomfeat.output`) per
trajectory into an output folder and a manifest of what was done, ``geomfeat-manifest.json``.
With a ``dask.distributed`` ``Client`` the work runs on the cluster's workers, which read the
trajectories and write the outputs themselves (the folder must be on a file system they share):

* one *plan* task per trajectory opens it, checks whether its output is already complete (then
  nothing else is done), picks the batch size and creates the hidden ``.partial`` file;
* one *part* task per ``frames_per_task`` frames (default: the whole trajectory) fills its rows
  of the ``.partial`` file. Parts start at multiples of the batch size, so every batch, and
  every bit of the result, is what one pass over the trajectory gives;
* one *finish* task renames the filled file into place and writes the sidecar, which is what
  marks an output complete.

A worker that dies loses only its running task, which the scheduler gives to another worker
(Dask's ``distributed.scheduler.allowed-failures``, default 3); rerunning a part rewrites the
same rows with the same bits. An interrupted run leaves hidden ``.partial`` files only, never an
output that looks complete, and a rerun skips the complete ones.

Each worker process loads an encoder once and keeps it for all its tasks. On a worker that sees
several GPUs, ``device="cuda"`` (or the default) picks GPU ``worker name mod GPU count``, so the
workers of a ``LocalCluster`` spread over the node's GPUs; ``dask_cuda.LocalCUDACluster`` pins one
GPU per worker instead.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from ._threads import default_threads, torch_threads
from ._version import __version__
from .errors import GeomfeatError, InputError, OutputError
from .featurizer import GeomFeaturizer
from .locks import hold
from .output import (
    box_applied,
    create_partial,
    fill_partial,
    finish_output,
    input_identity,
    partial_path,
    plan_output,
    write_json,
)
from .trajectory import load_universe

__all__ = ["MANIFEST_NAME", "Manifest", "embed_jobs", "embed_many", "local_cluster",
           "output_paths", "worker_device"]

#: File name of the manifest written into the output folder.
MANIFEST_NAME = "geomfeat-manifest.json"

#: Encoders loaded by this (worker) process, kept for its later tasks.
_ENCODERS: dict[tuple[str, str, str, str], Any] = {}


@dataclass
class Manifest:
    """What :func:`embed_many` did, as written to ``geomfeat-manifest.json``.

    Attributes
    ----------
    entries : list of dict
        One per trajectory: ``trajectory``, ``output``, ``status`` (``"written"``,
        ``"complete"`` = already there, ``"failed"``, or ``"pending"`` = not done because
        the run was interrupted), ``frames``, ``parts``, ``workers``, ``seconds`` and, for
        failures, ``error``.
    run : dict
        Settings of the run (featurizer parameters, frame slice, scheduler, threads) and the
        number of encoder loads per worker process.
    path : Path or None
        Where the manifest was written.
    """

    entries: list[dict[str, Any]]
    run: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def count(self, status: str) -> int:
        """Number of trajectories with ``status``."""
        return sum(entry["status"] == status for entry in self.entries)


def output_paths(trajectories: Sequence[str | os.PathLike], out_dir: str | os.PathLike
                 ) -> list[tuple[Path, Path]]:
    """``[(trajectory, out_dir/<trajectory stem>.npy), ...]``; two inputs may not share a name."""
    out_dir = Path(out_dir)
    jobs = [(Path(t), out_dir / f"{Path(t).stem}.npy") for t in trajectories]
    seen: dict[Path, Path] = {}
    for trajectory, target in jobs:
        if target in seen:
            raise InputError(f"{seen[target]} and {trajectory} would both be written to "
                             f"{target}; embed them into different folders")
        if target.with_suffix(".json").name == MANIFEST_NAME:
            raise InputError(f"{trajectory}: its sidecar would overwrite the manifest "
                             f"{MANIFEST_NAME}; rename the trajectory")
        seen[target] = trajectory
    return jobs


def worker_device(device: str | None, worker_name: Any, n_gpus: int) -> str | None:
    """The device a worker named ``worker_name`` uses when it sees ``n_gpus`` GPUs.

    An explicit index (``"cuda:1"``) or ``"cpu"`` is kept; ``None`` or ``"cuda"`` on a worker
    with several GPUs becomes ``cuda:<k>`` with ``k = worker name mod n_gpus`` (``LocalCluster``
    names its workers 0, 1, ...; other names are hashed).
    """
    if n_gpus < 2 or device not in (None, "cuda"):
        return device
    index = worker_name if isinstance(worker_name, int) else zlib.crc32(str(worker_name).encode())
    return f"cuda:{index % n_gpus}"


def local_cluster(n_workers: int, threads_per_worker: int = 1, **kwargs: Any):
    """A ``dask.distributed.LocalCluster`` of worker processes set up for geomfeat.

    Scheduler, workers and dashboard listen on 127.0.0.1 only, the dashboard on a free port
    (``cluster.dashboard_link``); ``kwargs`` go to ``LocalCluster``.

    Dask's nannies set ``MALLOC_TRIM_THRESHOLD_=65536`` in their workers, which also switches
    off glibc's adaptive ``mmap`` threshold: every large tensor is then freshly mapped and its
    pages faulted in, which made ViSNet 3× slower on the CPU (measured, see
    ``docs/performance.md``). This cluster's workers keep glibc's defaults; for a cluster of
    your own, set the Dask config key
    ``distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_`` to ``None``.
    """
    import dask
    from distributed import LocalCluster

    options = {"host": "127.0.0.1", "dashboard_address": ":0", "processes": True, **kwargs}
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        return LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                            **options)


# --------------------------------------------------------------------------------------- tasks
def _current_worker():
    try:
        from distributed import get_worker
    except ImportError:
        return None
    try:
        return get_worker()
    except ValueError:
        return None


def _reader(featurizer: GeomFeaturizer, trajectory: str, top: str):
    return featurizer.reader(load_universe(trajectory, top))


def _plan_task(featurizer: GeomFeaturizer, trajectory: str, top: str, out: str,
               frame_slice: tuple, overwrite: bool, frames_per_task: int | None,
               overwrite_flag: str = "overwrite=True") -> dict[str, Any]:
    """Settings, batch size and frame ranges of one output; creates its ``.partial`` file."""
    start, stop, stride = frame_slice
    reader = _reader(featurizer, trajectory, top)
    expected = plan_output(featurizer, reader, out, start=start, stop=stop, stride=stride,
                           overwrite=overwrite, inputs=input_identity(reader, trajectory, top),
                           overwrite_flag=overwrite_flag)
    frames = reader.frame_indices(start, stop, stride)
    if expected is None:
        return {"status": "complete", "frames": len(frames)}
    batch_size = featurizer.resolve_batch_size(reader, frames)
    expected_box = box_applied(featurizer, reader, frames)
    if frames_per_task is None:
        parts = [(0, len(frames))]
    else:
        per_task = max(batch_size, frames_per_task // batch_size * batch_size)  # whole batches
        parts = [(lo, min(lo + per_task, len(frames)))
                 for lo in range(0, len(frames), per_task)] or [(0, 0)]
    create_partial(out, expected["shape"])
    return {"status": "todo", "frames": len(frames), "batch_size": batch_size,
            "parts": parts, "expected": expected, "box_applied": expected_box}


def _part_task(featurizer: GeomFeaturizer, trajectory: str, top: str, out: str,
               frame_slice: tuple, part: tuple[int, int], batch_size: int,
               threads: int | None, topic: str | None) -> dict[str, Any]:
    """Embed rows ``part`` of one output into its ``.partial`` file."""
    worker = _current_worker()
    loaded = featurizer._encoder is None
    if worker is not None:
        featurizer, loaded = _worker_featurizer(featurizer, worker.name)
    report: Callable[[int], None] | None = None
    if worker is not None and topic is not None:
        done = [0]

        def report(n: int) -> None:
            done[0] += n
            worker.log_event(topic, {"part": [out, part[0]], "done": done[0]})

    began = time.perf_counter()
    with torch_threads(threads or default_threads()):  # the sidecar records the count
        reader = _reader(featurizer, trajectory, top)
        frames = reader.frame_indices(*frame_slice)
        fill_partial(featurizer, reader, partial_path(out), frames, range(*part), batch_size,
                     report)
        used_threads = torch.get_num_threads()
    return {"worker": None if worker is None else worker.address, "pid": os.getpid(),
            "encoder_loaded": loaded, "seconds": time.perf_counter() - began,
            "threads": used_threads}


def _finish_task(out: str, expected: dict[str, Any], metadata: dict[str, Any],
                 *parts: dict[str, Any]) -> list[dict[str, Any]]:
    """Move the filled file into place and write its sidecar, once every part is done.

    The sidecar also records the threads the parts ran with (one number, or the list of
    distinct ones): float32 bits depend on them.
    """
    threads = sorted({p["threads"] for p in parts})
    metadata = {**metadata, "threads": threads[0] if len(threads) == 1 else threads}
    finish_output(out, expected, metadata)
    return list(parts)


def _worker_featurizer(featurizer: GeomFeaturizer, worker_name: Any
                       ) -> tuple[GeomFeaturizer, bool]:
    """``featurizer`` on this worker's device with the encoder this process keeps loaded."""
    n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    featurizer.device = worker_device(featurizer.device, worker_name, n_gpus)
    key = (featurizer.card.name, featurizer.card.sha256, featurizer.dtype,
           str(featurizer.torch_device))
    loaded = key not in _ENCODERS
    if loaded:
        _ENCODERS[key] = featurizer.encoder
    featurizer._encoder = _ENCODERS[key]
    return featurizer, loaded


# --------------------------------------------------------------------------------------- driver
def embed_many(
    featurizer: GeomFeaturizer | str,
    trajectories: Sequence[str | os.PathLike],
    top: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    client: Any = None,
    start: int | None = None,
    stop: int | None = None,
    stride: int | None = None,
    overwrite: bool = False,
    frames_per_task: int | None = None,
    threads: int | None = None,
    progress: bool = True,
    wait: bool = False,
) -> Manifest:
    """Embed every trajectory into ``out_dir/<name>.npy``, here or on a Dask cluster.

    Parameters
    ----------
    featurizer : GeomFeaturizer or str
        A configured featurizer, or a registered model name for the defaults.
    trajectories : list of paths
        Trajectory files (any format MDAnalysis reads), all with topology ``top``.
    top : path
        Topology shared by the trajectories.
    out_dir : path
        Output folder (created if its parent exists). It receives ``<stem>.npy`` and
        ``<stem>.json`` per trajectory and ``geomfeat-manifest.json``.
    client : dask.distributed.Client, optional
        Run on this client's cluster (see :func:`local_cluster`); ``None`` runs here.
    start, stop, stride, overwrite, frames_per_task, threads, progress, wait
        As for :func:`embed_jobs`.

    Returns
    -------
    Manifest
        Per trajectory: written, already complete, or failed (with the error).

    Raises
    ------
    GeomfeatError
        After every other trajectory is done, if any failed (the manifest names them all).

    Examples
    --------
    >>> from dask.distributed import Client                              # doctest: +SKIP
    >>> client = Client(local_cluster(2))                                # doctest: +SKIP
    >>> embed_many("visnet-denali", sorted(glob("runs/*.xtc")), "top.pdb", "emb/",
    ...            client=client)                                       # doctest: +SKIP
    """
    out_dir = Path(out_dir)
    if not out_dir.parent.is_dir():
        raise InputError(f"output folder's parent does not exist: {out_dir.parent}")
    jobs = output_paths(trajectories, out_dir)
    out_dir.mkdir(exist_ok=True)
    return embed_jobs(featurizer, jobs, top, start=start, stop=stop, stride=stride,
                      overwrite=overwrite, client=client, frames_per_task=frames_per_task,
                      threads=threads, progress=progress, manifest=out_dir / MANIFEST_NAME,
                      wait=wait)


def embed_jobs(
    featurizer: GeomFeaturizer | str,
    jobs: Sequence[tuple[str | os.PathLike, str | os.PathLike]],
    top: str | os.PathLike,
    *,
    start: int | None = None,
    stop: int | None = None,
    stride: int | None = None,
    overwrite: bool = False,
    client: Any = None,
    frames_per_task: int | None = None,
    threads: int | None = None,
    progress: bool = True,
    manifest: str | os.PathLike | None = None,
    wait: bool = False,
    option_style: str = "python",
) -> Manifest:
    """Embed ``(trajectory, output.npy)`` pairs; the engine behind :func:`embed_many`.

    Parameters
    ----------
    featurizer : GeomFeaturizer or str
        A configured featurizer, or a registered model name.
    jobs : list of (path, path)
        Trajectory and destination ``.npy`` (its folder must exist).
    top : path
        Topology of every trajectory.
    start, stop, stride : int, optional
        Frame slice of every trajectory, applied while reading.
    overwrite : bool
        Replace existing outputs that were made with other settings or from other input
        files, are unreadable, or were not made by geomfeat (else such a trajectory fails).
    client : dask.distributed.Client, optional
        Run the tasks on this client's cluster; ``None`` runs them here, one after another.
    frames_per_task : int, optional
        Split trajectories into tasks of about this many frames (rounded to whole batches);
        default one task per trajectory.
    threads : int, optional
        PyTorch intra-op threads per task (default: unchanged, i.e. this process's setting
        when serial and the workers' own on a cluster; Dask workers start with one). The
        float32 sums of a frame depend on the thread count and the batch size at the 1e-6
        level, so runs with equal ``threads`` (and batch size) give bit-for-bit equal outputs
        however the work is spread; give it explicitly when that matters. On a node shared
        by ``W`` workers, ``cores // W`` avoids oversubscription (2 workers × 2 threads on 2
        cores were 2.5× slower than 2 × 1).
    progress : bool
        A progress bar (frames/s) on stderr, fed by the workers, over the frames still to
        embed (complete outputs are not counted).
    manifest : path, optional
        Where to write the manifest (JSON). Entries of other runs into the same manifest are
        kept (merged under the manifest's lock), those of this run's outputs replaced.
    wait : bool
        If another run holds an output's lock (see :mod:`geomfeat.locks`), wait for it instead
        of failing at once.
    option_style : {"python", "cli"}
        How error messages spell options: ``overwrite=True`` or ``--overwrite``.

    Returns
    -------
    Manifest
    """
    if isinstance(featurizer, str):
        featurizer = GeomFeaturizer(featurizer)
    if not Path(top).is_file():  # every task would fail alike
        raise InputError(f"topology file not found: {top}")
    if frames_per_task is not None and int(frames_per_task) < 1:
        raise InputError(f"frames_per_task must be a positive integer, got {frames_per_task}")
    cli = option_style == "cli"
    flags = {"overwrite": "--overwrite" if cli else "overwrite=True",
             "wait": "--wait" if cli else "wait=True"}
    run = _Run(featurizer, [(str(t), str(o)) for t, o in jobs], str(top),
               (start, stop, stride), overwrite, frames_per_task, threads, progress,
               flags["overwrite"])
    primary: BaseException | None = None
    manifest_error: Exception | None = None
    with hold([o for _, o in jobs], wait=wait, wait_flag=flags["wait"]):
        try:
            if client is None:
                run.serial()
            else:
                run.distributed(client)
        except BaseException as exc:  # e.g. Ctrl-C or SIGTERM
            primary = exc
            run.close_bar(clear=True)  # the error is then the one line left
            run.discard_unfinished()  # leave no .partial files behind
        run.close_bar(clear=bool(run.exceptions))
        result = run.manifest(client)
        if manifest is not None:
            result.path = Path(manifest)
            try:
                write_manifest(result)
            except (GeomfeatError, OSError) as exc:
                manifest_error = exc
    if primary is not None:
        if manifest_error is not None:  # reported, without hiding the first error
            _add_note(primary, f"and the manifest could not be written: {manifest_error}")
        raise primary
    failed = [e for e in result.entries if e["status"] == "failed"]
    error: BaseException | None = None
    if failed and len(jobs) == 1 and run.exceptions:
        error = run.exceptions[0]
    elif failed:
        where = f" (see {result.path})" if result.path and manifest_error is None else ""
        error = GeomfeatError(f"{len(failed)} of {len(jobs)} trajectories failed{where}; "
                              f"first: {failed[0]['trajectory']}: {failed[0]['error']}")
    if error is not None:
        if manifest_error is not None:
            _add_note(error, f"and the manifest could not be written: {manifest_error}")
        raise error
    if manifest_error is not None:
        raise OutputError(f"{result.count('written')} outputs written, but the manifest "
                          f"could not be: {manifest_error}") from manifest_error
    return result


def _add_note(exc: BaseException, note: str) -> None:
    """``exc.add_note(note)`` (Python 3.11) on every supported Python."""
    exc.__notes__ = [*getattr(exc, "__notes__", []), note]  # type: ignore[attr-defined]


def write_manifest(manifest: Manifest) -> None:
    """Write ``manifest`` to ``manifest.path``, merged with what other runs recorded there.

    Under the manifest's lock, the file is read, entries for this run's outputs replaced (or
    appended) and those of other outputs kept, so that runs into one folder (e.g. the tasks
    of a job array) keep each other's entries. An unreadable manifest is replaced.
    """
    path = Path(manifest.path)
    with hold([path], wait=True):  # held for milliseconds by other runs: always wait
        try:
            old = json.loads(path.read_text(encoding="utf-8"))["outputs"]
            old = [e for e in old if isinstance(e, dict) and "output" in e]
        except (OSError, ValueError, KeyError, TypeError):
            old = []
        ours = {Path(e["output"]).name: e for e in manifest.entries}
        merged = [ours.pop(Path(e["output"]).name, e) for e in old]
        merged += list(ours.values())
        write_json(path, {"run": manifest.run, "outputs": merged})


class _LogLines:
    """tqdm's output stream for logs: each state on a line of its own, the same count once,
    from the first frame done on (a run that fails at once leaves only its error)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.last = ""

    def write(self, text: str) -> None:
        for piece in re.split(r"[\r\n]", text):
            piece = piece.strip()
            counts = piece.split("[")[0]  # "model: 40%|####  | 80/200 ": not the rate
            if re.search(r"\| 0/\d+ $", counts):  # nothing done yet: nothing to log
                continue
            if piece and counts != self.last:
                self.last = counts
                self.stream.write(piece + "\n")

    def flush(self) -> None:
        self.stream.flush()


class _Run:
    """State of one :func:`embed_jobs` call: the jobs, their plans and what became of them."""

    def __init__(self, featurizer: GeomFeaturizer, jobs: list[tuple[str, str]], top: str,
                 frame_slice: tuple, overwrite: bool, frames_per_task: int | None,
                 threads: int | None, progress: bool,
                 overwrite_flag: str = "overwrite=True") -> None:
        self.featurizer = featurizer
        self.jobs = jobs
        self.top = top
        self.frame_slice = frame_slice
        self.overwrite = overwrite
        self.frames_per_task = frames_per_task
        self.threads = threads
        self.overwrite_flag = overwrite_flag
        self.entries = [{"trajectory": t, "output": o, "status": "pending", "frames": None}
                        for t, o in jobs]
        self.exceptions: list[BaseException] = []
        self.began = [0.0] * len(jobs)
        self.progress = progress
        self.encoder_loads: dict[str, int] = {}  # per worker process, from the finished parts
        self._bar: Any = None
        self._bar_total_known = False
        self._tty = False

    def bar(self, total: int = 0) -> Any:
        """The progress bar, shown from the first trajectory with frames to embed on.

        On a terminal it redraws itself; in a log file (stderr not a terminal) it writes a
        line every 10 s at most, each on its own line and none twice.
        """
        if self._bar is None:
            from tqdm.auto import tqdm

            tty = sys.stderr.isatty()
            self._bar = tqdm(total=total, unit="frame", desc=self.featurizer.model,
                             disable=not self.progress, dynamic_ncols=True,
                             file=sys.stderr if tty else _LogLines(sys.stderr),
                             mininterval=0.1 if tty else 10.0)
            self._tty = tty
        return self._bar

    def close_bar(self, clear: bool) -> None:
        if self._bar is not None:
            if clear:
                self._bar.leave = False
            self._bar.close()

    def _metadata(self, index: int, plan: dict[str, Any]) -> dict[str, Any]:
        return {"trajectory": self.jobs[index][0], "topology": self.top,
                "batch_size": plan["batch_size"], "box_applied": plan["box_applied"]}

    def _planned(self, index: int, plan: dict[str, Any]) -> None:
        self.entries[index]["frames"] = plan["frames"]
        if plan["status"] == "complete":  # not on the bar: no work, and no absurd frames/s
            self.entries[index].update(status="complete", parts=0)
            return
        self.entries[index]["parts"] = len(plan["parts"])
        if self._bar is None:
            self.bar(plan["frames"])
        elif not self._bar_total_known:
            self._bar.total += plan["frames"]
            if self._tty:
                self._bar.refresh()

    def _finished(self, index: int, parts: list[dict[str, Any]]) -> None:
        self.entries[index].update(
            status="written", seconds=round(time.perf_counter() - self.began[index], 3),
            workers=sorted({p["worker"] for p in parts if p["worker"] is not None}))
        for part in parts:
            name = part["worker"] or "this process"
            self.encoder_loads[name] = (self.encoder_loads.get(name, 0)
                                        + int(part["encoder_loaded"]))

    def _failed(self, index: int, exc: BaseException) -> None:
        self.exceptions.append(exc)
        message = str(exc) if isinstance(exc, GeomfeatError) else f"{type(exc).__name__}: {exc}"
        self.entries[index].update(status="failed", error=message)
        partial_path(self.jobs[index][1]).unlink(missing_ok=True)

    def discard_unfinished(self) -> None:
        """Remove the ``.partial`` files of outputs that were not finished."""
        for entry, (_, out) in zip(self.entries, self.jobs, strict=True):
            if entry["status"] == "pending":
                partial_path(out).unlink(missing_ok=True)

    # ----------------------------------------------------------------------------- serial
    def serial(self) -> None:
        plans: list[dict[str, Any] | None] = []
        for index, (trajectory, out) in enumerate(self.jobs):  # plan all: the bar's total
            try:
                plans.append(_plan_task(self.featurizer, trajectory, self.top, out,
                                        self.frame_slice, self.overwrite, None,
                                        self.overwrite_flag))
            except Exception as exc:
                plans.append(None)
                self._failed(index, exc)
        todo = sum(p["frames"] for p in plans if p is not None and p["status"] != "complete")
        if todo:
            if self.featurizer._encoder is None:  # fetched (pooch's lines) before the bar
                _ = self.featurizer.encoder
                self.encoder_loads["this process"] = 1
            self.bar(todo)
            self._bar_total_known = True
        for index, plan in enumerate(plans):
            if plan is not None:
                self._planned(index, plan)
        for index, plan in enumerate(plans):
            if plan is None or plan["status"] == "complete":
                continue
            trajectory, out = self.jobs[index]
            self.began[index] = time.perf_counter()
            try:
                part = _part_task(self.featurizer, trajectory, self.top, out, self.frame_slice,
                                  (0, plan["frames"]), plan["batch_size"], self.threads, None)
                self.bar().update(plan["frames"])
                self._finished(index, _finish_task(out, plan["expected"],
                                                   self._metadata(index, plan), part))
            except Exception as exc:
                self._failed(index, exc)

    # ----------------------------------------------------------------------------- dask
    def distributed(self, client: Any) -> None:
        from distributed import as_completed

        tag = uuid.uuid4().hex[:8]
        topic = f"geomfeat-progress-{tag}"
        done: dict[tuple, int] = {}

        def on_event(event: tuple[float, dict[str, Any]]) -> None:
            message = event[1]
            key = tuple(message["part"])
            increment = message["done"] - done.get(key, 0)
            if increment > 0:  # a retried part counts from where the lost one stopped
                done[key] = message["done"]
                self.bar().update(increment)

        client.subscribe_topic(topic, on_event)
        kinds: dict[str, tuple[str, int]] = {}
        futures = as_completed()
        # workers may run elsewhere: they get absolute paths (of the file system they share)
        top = os.path.abspath(self.top)
        where = [(os.path.abspath(t), os.path.abspath(o)) for t, o in self.jobs]
        for index, (trajectory, out) in enumerate(where):
            future = client.submit(_plan_task, self.featurizer, trajectory, top, out,
                                   self.frame_slice, self.overwrite, self.frames_per_task,
                                   self.overwrite_flag, key=f"geomfeat-plan-{tag}-{index}")
            kinds[future.key] = ("plan", index)
            futures.add(future)
        try:
            for future in futures:
                kind, index = kinds[future.key]
                try:
                    result = future.result()
                except Exception as exc:
                    self._failed(index, exc)
                    continue
                if kind == "finish":
                    self._finished(index, result)
                    continue
                self._planned(index, result)
                if result["status"] == "complete":
                    continue
                trajectory, out = where[index]
                self.began[index] = time.perf_counter()
                parts = [client.submit(_part_task, self.featurizer, trajectory, top, out,
                                       self.frame_slice, part, result["batch_size"],
                                       self.threads, topic,
                                       key=f"geomfeat-part-{tag}-{index}-{part[0]}")
                         for part in result["parts"]]
                finish = client.submit(_finish_task, out, result["expected"],
                                       self._metadata(index, result), *parts,
                                       key=f"geomfeat-finish-{tag}-{index}")
                kinds[finish.key] = ("finish", index)
                futures.add(finish)
        finally:
            client.unsubscribe_topic(topic)

    # ----------------------------------------------------------------------------- report
    def manifest(self, client: Any) -> Manifest:
        params = {k: v for k, v in self.featurizer.get_params().items() if k != "progress"}
        start, stop, stride = self.frame_slice
        run = {
            "geomfeat_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "featurizer": params,
            "topology": self.top,
            "start": start, "stop": stop, "stride": stride,
            "scheduler": "serial" if client is None else client.scheduler.address,
            "frames_per_task": self.frames_per_task,
            "threads": self.threads,
            "encoder_loads": self.encoder_loads,
        }
        return Manifest(self.entries, run)
