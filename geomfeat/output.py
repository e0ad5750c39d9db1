"""Writing embeddings to disk: atomic ``.npy`` files with a JSON sidecar.

An output ``OUT.npy`` is filled through a memory map at a temporary path beside it
(``.OUT.npy.partial``) and renamed into place only when every frame is written; its sidecar
``OUT.json`` (model, checkpoint SHA-256, selection, pooling, frames, shape, geomfeat version) is
written last, the same way. A failed run removes its temporary files and leaves any earlier
output untouched.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ._version import __version__
from .errors import InputError
from .featurizer import GeomFeaturizer
from .trajectory import TrajectoryReader

__all__ = ["sidecar_path", "write_embeddings"]


def sidecar_path(out: str | os.PathLike) -> Path:
    """The JSON sidecar that describes ``out`` (``emb.npy`` → ``emb.json``)."""
    return Path(out).with_suffix(".json")


def _check_destination(out: Path) -> None:
    if out.suffix != ".npy":
        raise InputError(f"output file must end in .npy: {out}")
    if not out.parent.is_dir():
        raise InputError(f"output folder does not exist: {out.parent}")
    if out.is_dir():
        raise InputError(f"output path is a folder: {out}")


def _atomic_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


def write_embeddings(
    featurizer: GeomFeaturizer,
    reader: TrajectoryReader,
    out: str | os.PathLike,
    *,
    start: int | None = None,
    stop: int | None = None,
    stride: int | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Embed ``reader``'s frames into ``out`` (a ``.npy``), streaming, and write its sidecar.

    Parameters
    ----------
    featurizer : GeomFeaturizer
        Configured featurizer.
    reader : TrajectoryReader
        Selected atoms and frames (see :func:`geomfeat.trajectory.open_trajectory`).
    out : path
        Destination ``.npy``; its folder must exist.
    start, stop, stride : int, optional
        Frame slice, applied while reading.
    metadata : dict, optional
        Extra entries for the sidecar (e.g. input file names).

    Returns
    -------
    pathlib.Path
        The written ``.npy``; the sidecar is :func:`sidecar_path` of it.
    """
    out = Path(out)
    _check_destination(out)
    frames = reader.frame_indices(start, stop, stride)
    shape = (len(frames), *featurizer.frame_shape(reader))
    tmp = out.with_name(f".{out.name}.partial")
    try:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
        done = 0
        for _, batch in featurizer.iter_embeddings(reader, frames):
            array[done : done + len(batch)] = batch
            done += len(batch)
        array.flush()
        del array
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    card = featurizer.card
    select = featurizer.select
    _atomic_json(sidecar_path(out), {
        "file": out.name,
        "shape": list(shape),
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
        "start": start,
        "stop": stop,
        "stride": stride,
        "frames": len(frames),
        "units": "positions in Å (nm inputs converted)",
        "geomfeat_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **(metadata or {}),
    })
    return out
