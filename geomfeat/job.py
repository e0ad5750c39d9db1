"""One embedding job: plan → fill → finish for one output, as the scheduler's tasks.

An output ``OUT.npy`` is written in three kinds of task, run one after another in this process
(:func:`embed_serially`) or spread over a Dask cluster by :mod:`geomfeat.cluster`:

1. :func:`plan_task`: open the trajectory, work out the settings the output will have
   (:func:`plan_output`; ``None`` if it is already complete), the batch size and the frame
   ranges of its parts, and create its hidden ``.partial`` file;
2. :func:`part_task`: embed one range of frames into its rows (:func:`fill_partial`);
3. :func:`finish_task`: rename the filled file into place and write the sidecar.

This module is where the featurizer meets the files: it asks :class:`~geomfeat.GeomFeaturizer`
for embeddings and the settings they are made with, and hands rows and settings to the file
primitives of :mod:`geomfeat.output`, which know nothing of the featurizer.
"""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ._threads import default_threads, torch_threads
from .errors import InputError, OutputError
from .featurizer import GeomFeaturizer
from .identity import file_identity
from .output import (
    check_destination,
    create_partial,
    existing_output_problem,
    finish_output,
    partial_path,
    write_rows,
)
from .trajectory import TrajectoryReader, load_universe

if TYPE_CHECKING:
    from .manifest import RunState

__all__ = ["box_applied", "embed_serially", "fill_partial", "finish_task", "input_identity",
           "part_task", "plan_output", "plan_task", "settings", "worker_device"]

#: Encoders loaded by this (worker) process, kept for its later tasks.
_ENCODERS: dict[tuple[str, str, str, str], Any] = {}


def settings(featurizer: GeomFeaturizer, reader: TrajectoryReader, frames: range,
             start: int | None, stop: int | None, stride: int | None) -> dict[str, Any]:
    """What identifies an output: two runs with equal settings write equal files."""
    card, select = featurizer.card, featurizer.select
    return {
        "shape": [len(frames), *featurizer.frame_shape(reader)],
        "dtype": "float32",
        "model": card.name,
        "checkpoint": card.file,
        "sha256": card.sha256,
        "select": select if isinstance(select, str) else np.asarray(select).tolist(),
        "heavy": bool(getattr(featurizer, "heavy", False)) or select == "heavy"  # no H
        if isinstance(select, str) else bool(getattr(featurizer, "heavy", False)),
        "n_atoms": reader.n_atoms,
        **reader.summary(),  # element counts, unseen elements allowed, atoms left out, box rule
        "n_residues": len(reader.residue_labels),
        "pool": featurizer.pool,
        "reduce": featurizer.reduce,
        "features": featurizer.features,
        "layers": list(featurizer.layer_indices),  # 0-based interaction layers, output order
        "n_layers": featurizer.n_layers,
        "precision": featurizer.dtype,
        "pbc": featurizer.pbc,
        "start": start,
        "stop": stop,
        "stride": stride,
        "frames": len(frames),
    }


def input_identity(reader: TrajectoryReader, trajectory: str | os.PathLike | None,
                   topology: str | os.PathLike | None) -> dict[str, Any]:
    """``{"trajectory": ..., "topology": ...}`` identities (see :mod:`geomfeat.identity`).

    The trajectory's also records the number of frames read (``reader.n_frames_total``).
    """
    inputs: dict[str, Any] = {}
    if trajectory is not None:
        inputs["trajectory"] = {**file_identity(trajectory), "frames": reader.n_frames_total}
    if topology is not None:
        inputs["topology"] = file_identity(topology)
    return inputs


def box_applied(featurizer: GeomFeaturizer, reader: TrajectoryReader, frames: range) -> bool:
    """Whether periodic boxes enter the neighbour lists: ``pbc`` and a cell on the first frame."""
    if not featurizer.pbc or len(frames) == 0:
        return False
    return next(reader.iter_batches(1, frames[:1])).boxes is not None


def plan_output(featurizer: GeomFeaturizer, reader: TrajectoryReader, out: str | os.PathLike,
                *, start: int | None = None, stop: int | None = None,
                stride: int | None = None, overwrite: bool = False,
                inputs: dict[str, Any] | None = None,
                overwrite_flag: str = "overwrite=True") -> dict[str, Any] | None:
    """The settings ``out`` will be written with, or ``None`` if it is already complete.

    Parameters
    ----------
    inputs : dict, optional
        Identity of the input files (:func:`input_identity`): recorded in the sidecar, and an
        existing output made from other files is not complete.
    overwrite_flag : str
        How messages spell the option that allows replacing (``"--overwrite"`` for the CLI).

    Raises
    ------
    InputError
        If the frame slice selects no frames.
    OutputError
        If ``out`` exists and is unreadable, was made with other settings or inputs, or was not
        made by geomfeat, and not ``overwrite``. The message says which, and what differs.
    """
    out = Path(out)
    check_destination(out)
    frames = reader.frame_indices(start, stop, stride)
    if len(frames) == 0:
        n = reader.n_frames_total
        raise InputError(f"start={start}, stop={stop}, stride={stride} select no frames of "
                         f"{reader.source}, which has {n} frame{'s' * (n != 1)}")
    expected = settings(featurizer, reader, frames, start, stop, stride)
    if inputs:
        expected["inputs"] = inputs
    problem = existing_output_problem(out, expected)
    if problem is None:
        return None
    if problem and not overwrite:
        raise OutputError(f"{problem}; remove it or pass {overwrite_flag}")
    return expected


def fill_partial(featurizer: GeomFeaturizer, reader: TrajectoryReader, tmp: str | os.PathLike,
                 frames: range, part: range, batch_size: int,
                 on_batch: Callable[[int], None] | None = None) -> None:
    """Embed ``frames[part]`` into rows ``part`` of the ``.partial`` file ``tmp``.

    ``part.start`` must be a multiple of ``batch_size`` for the rows to come out bit for bit as
    in one pass over ``frames`` (see :meth:`GeomFeaturizer.resolve_batch_size`). The rows are
    written by :func:`geomfeat.output.write_rows` (positioned, checked writes, then ``fsync``).
    """
    batches = (batch for _, batch in featurizer.iter_embeddings(
        reader, frames[part.start : part.stop], batch_size=batch_size))
    write_rows(tmp, batches, part, on_batch)


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


def plan_task(featurizer: GeomFeaturizer, trajectory: str, top: str, out: str,
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


def part_task(featurizer: GeomFeaturizer, trajectory: str, top: str, out: str,
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


def finish_task(out: str, expected: dict[str, Any], metadata: dict[str, Any],
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


def embed_serially(run: RunState) -> None:
    """Plan every output of ``run``, then fill and finish each in this process, one by one.

    Every output is planned first, so that the progress bar knows the frames still to embed;
    a failure is recorded in ``run`` (see :class:`~geomfeat.manifest.RunState`) and the next
    output goes on.
    """
    plans: list[dict[str, Any] | None] = []
    for index, (trajectory, out) in enumerate(run.jobs):  # plan all: the bar's total
        try:
            plans.append(plan_task(run.featurizer, trajectory, run.top, out,
                                   run.frame_slice, run.overwrite, None, run.overwrite_flag))
        except Exception as exc:
            plans.append(None)
            run.failed(index, exc)
    todo = sum(p["frames"] for p in plans if p is not None and p["status"] != "complete")
    if todo:
        if run.featurizer._encoder is None:  # fetched (pooch's lines) before the bar
            _ = run.featurizer.encoder
            run.encoder_loads["this process"] = 1
        run.bar(todo)
        run.bar_total_known = True
    for index, plan in enumerate(plans):
        if plan is not None:
            run.planned(index, plan)
    for index, plan in enumerate(plans):
        if plan is None or plan["status"] == "complete":
            continue
        trajectory, out = run.jobs[index]
        run.began[index] = time.perf_counter()
        try:
            part = part_task(run.featurizer, trajectory, run.top, out, run.frame_slice,
                             (0, plan["frames"]), plan["batch_size"], run.threads, None)
            run.bar().update(plan["frames"])
            run.finished(index, finish_task(out, plan["expected"],
                                            run.metadata(index, plan), part))
        except Exception as exc:
            run.failed(index, exc)

