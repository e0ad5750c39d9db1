"""Embedding many trajectories: scheduling their jobs in this process or on a Dask cluster.

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

The tasks themselves are one output's embedding job (:mod:`geomfeat.job`); this module only
schedules them (without a client, :func:`geomfeat.job.embed_serially` runs them here) and
keeps the run's record (:mod:`geomfeat.manifest`).

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

import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import GeomfeatError, InputError, OutputError
from .featurizer import GeomFeaturizer
from .job import embed_serially, finish_task, part_task, plan_task, worker_device
from .locks import hold
from .manifest import MANIFEST_NAME, Manifest, RunState, write_manifest

__all__ = ["MANIFEST_NAME", "Manifest", "embed_jobs", "embed_many", "local_cluster",
           "output_paths", "worker_device"]


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


#: Thread-count variables Dask's nannies set to 1 for their workers.
WORKER_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


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
    # The nannies' "pre-spawn" variables are written into *this* process's os.environ too, and
    # stay there: OMP_NUM_THREADS=1 would then pass for the user's own choice of threads
    # (geomfeat._threads) in everything this process runs later. The workers get them inside
    # their own process instead (before anything there imports torch).
    pre_spawn = "distributed.nanny.pre-spawn-environ"
    settings: dict[str, Any] = {f"{pre_spawn}.MALLOC_TRIM_THRESHOLD_": None}
    for name in WORKER_THREAD_VARIABLES:
        settings[f"{pre_spawn}.{name}"] = None
        settings[f"distributed.nanny.environ.{name}"] = 1
    with dask.config.set(settings):
        return LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                            **options)


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
    run = RunState(featurizer, [(str(t), str(o)) for t, o in jobs], str(top),
               (start, stop, stride), overwrite, frames_per_task, threads, progress,
               flags["overwrite"])
    primary: BaseException | None = None
    manifest_error: Exception | None = None
    with hold([o for _, o in jobs], wait=wait, wait_flag=flags["wait"]):
        try:
            if client is None:
                embed_serially(run)
            else:
                embed_distributed(run, client)
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


def embed_distributed(run: RunState, client: Any) -> None:
    """Run the jobs of ``run`` as tasks on ``client``'s cluster: plan, then parts, then finish.

    Each output's part tasks are submitted when its plan task returns, its finish task depends
    on them; the workers' progress messages feed the bar. Results and failures are recorded
    in ``run`` as they come in.
    """
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
            run.bar().update(increment)

    client.subscribe_topic(topic, on_event)
    kinds: dict[str, tuple[str, int]] = {}
    futures = as_completed()
    # workers may run elsewhere: they get absolute paths (of the file system they share)
    top = os.path.abspath(run.top)
    where = [(os.path.abspath(t), os.path.abspath(o)) for t, o in run.jobs]
    for index, (trajectory, out) in enumerate(where):
        future = client.submit(plan_task, run.featurizer, trajectory, top, out,
                               run.frame_slice, run.overwrite, run.frames_per_task,
                               run.overwrite_flag, key=f"geomfeat-plan-{tag}-{index}")
        kinds[future.key] = ("plan", index)
        futures.add(future)
    try:
        for future in futures:
            kind, index = kinds[future.key]
            try:
                result = future.result()
            except Exception as exc:
                run.failed(index, exc)
                continue
            if kind == "finish":
                run.finished(index, result)
                continue
            run.planned(index, result)
            if result["status"] == "complete":
                continue
            trajectory, out = where[index]
            run.began[index] = time.perf_counter()
            parts = [client.submit(part_task, run.featurizer, trajectory, top, out,
                                   run.frame_slice, part, result["batch_size"],
                                   run.threads, topic,
                                   key=f"geomfeat-part-{tag}-{index}-{part[0]}")
                     for part in result["parts"]]
            finish = client.submit(finish_task, out, result["expected"],
                                   run.metadata(index, result), *parts,
                                   key=f"geomfeat-finish-{tag}-{index}")
            kinds[finish.key] = ("finish", index)
            futures.add(finish)
    finally:
        client.unsubscribe_topic(topic)

