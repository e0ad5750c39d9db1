"""File primitives of an output: atomic ``.npy`` files with a JSON sidecar.

Nothing here knows the featurizer: an embedding job (:mod:`geomfeat.job`) decides what an
output holds and calls these steps, so that parts of it can be filled by different workers
(:mod:`geomfeat.cluster` schedules them, under the output's lock, see :mod:`geomfeat.locks`):

1. :func:`existing_output_problem`: whether an existing output is complete with the expected
   settings (or why it is in the way);
2. :func:`create_partial`: an empty ``.npy`` at a hidden path beside it (``.OUT.npy.partial``);
3. :func:`write_rows`: write a range of rows (checked positioned writes, ``fsync``);
4. :func:`finish_output`: rename it into place, then the sidecar ``OUT.json`` (model,
   checkpoint SHA-256, selection, pooling, frames, shape, the identity of the input files,
   batch size, threads, geomfeat version), which marks the output complete.

A failed or interrupted run leaves at most hidden ``.partial`` files, never a pair that looks
complete: every write is checked (a full disk is an error naming the file and the free
space), the data are flushed to disk (``fsync``) before the rename, and only a file whose rows
were all written is renamed. Rerunning with the same settings and the same input files skips
complete outputs (resume). An existing output is replaced only when asked (``overwrite``) if it
was made with other settings or from other input files (the message says what differs), if it
or its sidecar is unreadable, or if geomfeat did not make it (an ``.npy`` without sidecar, a
``.json`` that is not a geomfeat sidecar).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ._version import __version__
from .errors import InputError, OutputError
from .identity import identity_changes

__all__ = [
    "check_destination",
    "create_partial",
    "existing_output_problem",
    "finish_output",
    "is_complete",
    "partial_path",
    "sidecar_path",
    "write_json",
    "write_rows",
]

#: Keys of the sidecar that describe the run but do not decide whether an output is complete.
RECORDED_ONLY = ("inputs",)


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


def _free_space(path: Path) -> str:
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return "free space unknown"
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if free < 1024 or unit == "GiB":
            return f"{free:.0f} {unit} free" if unit == "bytes" else f"{free:.1f} {unit} free"
        free /= 1024
    raise AssertionError  # pragma: no cover


def write_error(path: Path, reason: str, what: str | None = None) -> OutputError:
    """An :class:`OutputError` naming ``path`` (or ``what``), the reason and the free space."""
    return OutputError(f"could not write {what or path}: {reason} "
                       f"({_free_space(path)} on its file system)")


def _write_all(fd: int, data: bytes | memoryview, offset: int, path: Path,
               what: str | None = None) -> None:
    """``os.pwrite`` all of ``data`` at ``offset``, looping on short writes."""
    view = memoryview(data).cast("B")
    while view.nbytes:
        try:
            written = os.pwrite(fd, view, offset)
        except OSError as exc:
            raise write_error(path, exc.strerror or str(exc), what) from None
        if written <= 0:
            raise write_error(path, "the file system accepted no more bytes", what)
        view = view[written:]
        offset += written


def _fsync(fd: int, path: Path, what: str | None = None) -> None:
    try:
        os.fsync(fd)
    except OSError as exc:  # NFS reports a full disk here, at the latest
        raise write_error(path, exc.strerror or str(exc), what) from None


def _fsync_folder(folder: Path) -> None:
    """Make renames in ``folder`` durable (where the platform allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as readable JSON (UTF-8, numpy values as lists/numbers), atomically.

    The text goes to a hidden ``.partial`` file, checked and flushed to disk, then renamed over
    ``path``; a failed write removes the ``.partial`` file and raises :class:`OutputError`.
    """
    _write_json_partial(path, payload)
    os.replace(partial_path(path), path)
    _fsync_folder(path.parent)


def _write_json_partial(path: Path, payload: dict[str, Any]) -> Path:
    tmp = partial_path(path)
    text = json.dumps(payload, indent=2, ensure_ascii=False, default=_jsonable) + "\n"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    except OSError as exc:
        raise write_error(path, exc.strerror or str(exc)) from None
    try:
        _write_all(fd, text.encode("utf-8"), 0, path)
        _fsync(fd, path)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _settings_changes(recorded: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    changes = [f"{key} {recorded.get(key)!r} → {value!r}" for key, value in expected.items()
               if key not in RECORDED_ONLY and key != "shape" and recorded.get(key) != value]
    if not changes and recorded.get("shape") != expected["shape"]:
        changes.append(f"shape {recorded.get('shape')} → {expected['shape']}")
    return changes


def _read_sidecar(side: Path) -> dict[str, Any]:
    """The sidecar's content; ``OutputError`` if unreadable."""
    try:
        recorded = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise OutputError(f"{side} is unreadable ({type(exc).__name__}: {exc})") from None
    if not isinstance(recorded, dict):
        raise OutputError(f"{side} is unreadable (not a JSON object)")
    return recorded


def _is_geomfeat_sidecar(recorded: dict[str, Any], out: Path) -> bool:
    return "geomfeat_version" in recorded and recorded.get("file") == out.name


def existing_output_problem(out: Path, expected: dict[str, Any]) -> str | None:
    """Why an existing ``out`` is not complete with ``expected``, as one phrase for a message.

    ``None``: ``out`` is complete. ``""``: nothing is in the way (no output, or an unfinished
    one of geomfeat's). Otherwise what is wrong: unreadable, not made by geomfeat, made with
    other settings (which, old → new) or from other input files (what changed).
    """
    side = sidecar_path(out)
    if not out.exists() and not side.exists():
        return ""
    if side.exists():
        try:
            recorded = _read_sidecar(side)
        except OutputError as exc:
            return str(exc)
        if not _is_geomfeat_sidecar(recorded, out):
            return (f"{side} is not a geomfeat sidecar of {out.name}, and geomfeat does not "
                    "replace files it did not make")
        if not out.exists():
            return ""  # the output was removed: its sidecar describes nothing
    else:
        finishing = partial_path(side)
        try:
            ours = _is_geomfeat_sidecar(_read_sidecar(finishing), out)
        except OutputError:
            ours = False
        if ours:
            return ""  # cut off between the two renames of finish_output: ours, incomplete
        return (f"{out} exists without the sidecar {side.name} that geomfeat writes, so "
                "geomfeat did not make it (or was cut off while replacing it)")
    try:
        shape = list(np.load(out, mmap_mode="r").shape)
    except (OSError, ValueError, EOFError) as exc:
        return f"{out} is unreadable ({type(exc).__name__}: {exc})"
    if shape != recorded.get("shape"):
        return (f"{out} is unreadable: its shape {shape} is not the {recorded.get('shape')} "
                f"its sidecar records")
    changes = _settings_changes(recorded, expected)
    if changes:
        return f"{out} was made with other settings ({'; '.join(changes)})"
    if "inputs" in expected:
        changes = identity_changes(recorded.get("inputs"), expected["inputs"])
        if changes:
            return f"{out} was made from other input files ({'; '.join(changes)})"
    return None


def is_complete(out: str | os.PathLike, expected: dict[str, Any]) -> bool:
    """Whether ``out`` and its sidecar exist and were written with the ``expected`` settings.

    A run that was interrupted leaves at most hidden ``.partial`` files, never a pair that
    passes this check.
    """
    return existing_output_problem(Path(out), expected) is None


def partial_path(out: str | os.PathLike) -> Path:
    """The hidden temporary file an output is filled in (``emb.npy`` → ``.emb.npy.partial``)."""
    out = Path(out)
    return out.with_name(f".{out.name}.partial")


def create_partial(out: str | os.PathLike, shape: Sequence[int]) -> Path:
    """Create (or truncate) ``out``'s ``.partial`` file as a float32 ``.npy`` of ``shape``.

    Raises :class:`OutputError` if the file system has clearly too little free space for it.
    """
    tmp = partial_path(out)
    needed = int(np.prod(shape, dtype=np.int64)) * 4
    try:
        free = shutil.disk_usage(tmp.parent).free
    except OSError:
        free = None
    if free is not None and free < needed:
        raise OutputError(f"{out} needs {needed} bytes but its file system has only "
                          f"{_free_space(tmp)}")
    try:
        np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=tuple(shape)).flush()
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_error(tmp, exc.strerror or str(exc), str(out)) from None
    return tmp


def write_rows(tmp: str | os.PathLike, batches: Iterable[np.ndarray], part: range,
               on_batch: Callable[[int], None] | None = None) -> None:
    """Write ``batches`` (consecutive rows) into rows ``part`` of the ``.partial`` file ``tmp``.

    Rows are written with positioned writes of exactly their bytes, not through a memory map:
    parts of one file filled by workers on different hosts of a network file system would
    otherwise write back whole pages and could overwrite each other's rows where they share a
    page. Every write is checked (short writes are continued, a full disk raises
    :class:`OutputError` naming the file and the free space) and flushed with ``fsync``.
    ``on_batch`` is called with the number of rows of each batch written.
    """
    tmp = Path(tmp)
    what = f"{tmp.name.removeprefix('.').removesuffix('.partial')} (in {tmp})"
    layout = np.load(tmp, mmap_mode="r")  # the header: where the rows start, their shape
    offset, shape, dtype = layout.offset, layout.shape, layout.dtype
    del layout
    row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
    with open(tmp, "r+b") as handle:
        row = part.start
        for batch in batches:
            data = np.ascontiguousarray(batch, dtype=dtype)
            if data.shape[1:] != tuple(shape[1:]):
                raise ValueError(f"{tmp}: rows of shape {data.shape[1:]} do not fit {shape}")
            _write_all(handle.fileno(), data, offset + row * row_bytes, tmp, what)
            row += len(batch)
            if on_batch is not None:
                on_batch(len(batch))
        if row != part.stop:
            raise OutputError(f"{what}: {row - part.start} of {len(part)} rows were read")
        _fsync(handle.fileno(), tmp, what)  # on the file server before the part reports done


def finish_output(out: str | os.PathLike, expected: dict[str, Any],
                  metadata: dict[str, Any] | None = None) -> None:
    """Move ``out``'s filled ``.partial`` file into place, then its sidecar (complete).

    The sidecar is first written and flushed to its own hidden ``.partial`` file, so that an
    ``.npy`` left without sidecar by a crash between the two renames is still known as
    geomfeat's (and replaced by the next run without asking).
    """
    out = Path(out)
    side = sidecar_path(out)
    side.unlink(missing_ok=True)  # an old sidecar must not describe the new file
    tmp = partial_path(out)
    retried = not tmp.exists() and out.is_file()  # a rerun after the rename (worker lost)
    if not (retried and list(np.load(out, mmap_mode="r").shape) == list(expected["shape"])):
        layout = np.load(tmp, mmap_mode="r")
        size = layout.offset + layout.nbytes
        del layout
        if os.path.getsize(tmp) != size:
            raise OutputError(f"{tmp} has {os.path.getsize(tmp)} bytes, not {size}: "
                              f"not renamed to {out}")
        replace_sidecar = _write_json_partial(side, _sidecar(out, expected, metadata))
        os.replace(tmp, out)
    else:
        replace_sidecar = _write_json_partial(side, _sidecar(out, expected, metadata))
    os.replace(replace_sidecar, side)
    _fsync_folder(out.parent)


def _sidecar(out: Path, expected: dict[str, Any], metadata: dict[str, Any] | None
             ) -> dict[str, Any]:
    return {
        "file": out.name,
        **expected,
        "units": "positions in Å (nm inputs converted)",
        "geomfeat_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **(metadata or {}),
    }
