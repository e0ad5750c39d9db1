"""Writing embeddings to disk: atomic ``.npy`` files with a JSON sidecar.

An output ``OUT.npy`` is written in steps, so that parts of it can be filled by different
workers (:mod:`geomfeat.cluster` runs them, serially or on Dask):

1. :func:`plan_output`: the settings it will have, or ``None`` if it is already complete;
2. :func:`create_partial`: an empty ``.npy`` at a hidden path beside it (``.OUT.npy.partial``);
3. :func:`fill_partial`: embed a range of frames into their rows;
4. :func:`finish_output`: rename it into place, then write the sidecar ``OUT.json`` (model,
   checkpoint SHA-256, selection, pooling, frames, shape, geomfeat version), which marks the
   output complete.

A failed or interrupted run leaves at most a hidden ``.partial`` file, never a pair that looks
complete. Rerunning with the same settings skips complete outputs (resume); an output made with
other settings is replaced only when asked (``overwrite``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._version import __version__
from .errors import InputError

if TYPE_CHECKING:
    from .featurizer import GeomFeaturizer
    from .trajectory import TrajectoryReader

__all__ = [
    "check_destination",
    "create_partial",
    "fill_partial",
    "finish_output",
    "is_complete",
    "partial_path",
    "plan_output",
    "settings",
    "sidecar_path",
    "write_json",
]


def sidecar_path(out: str | os.PathLike) -> Path:
    """The JSON sidecar that describes ``out`` (``emb.npy`` → ``emb.json``)."""
    return Path(out).with_suffix(".json")


def check_destination(out: Path) -> None:
    """Raise :class:`InputError` unless ``out`` is a ``.npy`` path in an existing folder."""
    if out.suffix != ".npy":
        raise InputError(f"output file must end in .npy: {out}")
    if not out.parent.is_dir():
        raise InputError(f"output folder does not exist: {out.parent}")
    if out.is_dir():
        raise InputError(f"output path is a folder: {out}")


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as readable JSON (UTF-8, numpy values as lists/numbers), atomically."""
    tmp = partial_path(path)
    text = json.dumps(payload, indent=2, ensure_ascii=False, default=_jsonable)
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


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
        "n_atoms": reader.n_atoms,
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


def is_complete(out: str | os.PathLike, expected: dict[str, Any]) -> bool:
    """Whether ``out`` and its sidecar exist and were written with the ``expected`` settings.

    A run that was interrupted leaves at most a hidden ``.partial`` file (or an ``.npy`` without
    sidecar), never a pair that passes this check.
    """
    out = Path(out)
    side = sidecar_path(out)
    if not (out.is_file() and side.is_file()):
        return False
    try:
        recorded = json.loads(side.read_text(encoding="utf-8"))
        shape = np.load(out, mmap_mode="r").shape
    except (OSError, ValueError):
        return False
    return (all(recorded.get(k) == v for k, v in expected.items())
            and list(shape) == expected["shape"])


def partial_path(out: str | os.PathLike) -> Path:
    """The hidden temporary file an output is filled in (``emb.npy`` → ``.emb.npy.partial``)."""
    out = Path(out)
    return out.with_name(f".{out.name}.partial")


def plan_output(featurizer: GeomFeaturizer, reader: TrajectoryReader, out: str | os.PathLike,
                *, start: int | None = None, stop: int | None = None,
                stride: int | None = None, overwrite: bool = False) -> dict[str, Any] | None:
    """The settings ``out`` will be written with, or ``None`` if it is already complete.

    Raises :class:`InputError` if ``out`` exists with other settings and not ``overwrite``.
    """
    out = Path(out)
    check_destination(out)
    frames = reader.frame_indices(start, stop, stride)
    expected = settings(featurizer, reader, frames, start, stop, stride)
    if is_complete(out, expected):
        return None
    if out.exists() and sidecar_path(out).exists() and not overwrite:
        raise InputError(f"{out} exists and was made with other settings (see "
                         f"{sidecar_path(out).name}); remove it or pass overwrite/--overwrite")
    return expected


def create_partial(out: str | os.PathLike, shape: Sequence[int]) -> Path:
    """Create (or truncate) ``out``'s ``.partial`` file as a float32 ``.npy`` of ``shape``."""
    tmp = partial_path(out)
    np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=tuple(shape)).flush()
    return tmp


def fill_partial(featurizer: GeomFeaturizer, reader: TrajectoryReader, tmp: str | os.PathLike,
                 frames: range, part: range, batch_size: int,
                 on_batch: Callable[[int], None] | None = None) -> None:
    """Embed ``frames[part]`` into rows ``part`` of the ``.partial`` file ``tmp``.

    ``part.start`` must be a multiple of ``batch_size`` for the rows to come out bit for bit as
    in one pass over ``frames`` (see :meth:`GeomFeaturizer.resolve_batch_size`). Rows are
    written with positioned writes of exactly their bytes, not through a memory map: parts of
    one file filled by workers on different hosts of a network file system would otherwise
    write back whole pages and could overwrite each other's rows where they share a page.
    """
    layout = np.load(tmp, mmap_mode="r")  # the header: where the rows start, their shape
    offset, shape, dtype = layout.offset, layout.shape, layout.dtype
    del layout
    row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
    with open(tmp, "r+b") as handle:
        row = part.start
        for _, batch in featurizer.iter_embeddings(reader, frames[part.start : part.stop],
                                                   batch_size=batch_size):
            data = np.ascontiguousarray(batch, dtype=dtype)
            if data.shape[1:] != tuple(shape[1:]):
                raise ValueError(f"{tmp}: rows of shape {data.shape[1:]} do not fit {shape}")
            os.pwrite(handle.fileno(), data.tobytes(), offset + row * row_bytes)
            row += len(batch)
            if on_batch is not None:
                on_batch(len(batch))
        os.fsync(handle.fileno())  # on the file server before the part reports done


def finish_output(out: str | os.PathLike, expected: dict[str, Any],
                  metadata: dict[str, Any] | None = None) -> None:
    """Move ``out``'s filled ``.partial`` file into place, then write the sidecar (complete)."""
    out = Path(out)
    sidecar_path(out).unlink(missing_ok=True)  # an old sidecar must not describe the new file
    tmp = partial_path(out)
    retried = not tmp.exists() and out.is_file()  # a rerun after the rename (worker lost)
    if not (retried and list(np.load(out, mmap_mode="r").shape) == list(expected["shape"])):
        os.replace(tmp, out)
    write_json(sidecar_path(out), {
        "file": out.name,
        **expected,
        "units": "positions in Å (nm inputs converted)",
        "geomfeat_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **(metadata or {}),
    })
