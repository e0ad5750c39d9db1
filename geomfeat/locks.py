"""One writer per output: exclusive file locks beside the outputs.

Every output ``OUT.npy`` is written under the lock file ``.OUT.npy.lock`` (and a folder's
manifest under ``.geomfeat-manifest.json.lock``), taken by the process that drives the run for
its whole duration, from planning to the sidecar. A second run that wants the same output fails
at once, naming the output and the holder (host, process id and start time, which the holder
writes into the lock file), or waits for it with ``wait=True`` / ``--wait``.

The locks are `filelock <https://py-filelock.readthedocs.io>`_ locks rather than hand-written
``fcntl`` calls: on POSIX they are ``flock(2)`` locks, which the kernel drops when the holder dies
(even by ``kill -9``), so a crashed run never leaves a stale lock; filelock re-checks after
acquiring that nobody unlinked the lock file meanwhile (so the file can be removed when the run
ends), works the same on Windows, and falls back to a marker-file lock on file systems without
``flock``. On Linux NFS clients ``flock`` is emulated with byte-range locks that the server
arbitrates (NFSv4, or NFSv3 with the lock manager running), so runs on different hosts of a
cluster exclude each other too; Lustre needs its ``flock`` mount option, without which the call
fails and filelock falls back to the marker file.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from .errors import OutputLockedError
from .output import write_error

__all__ = ["hold", "lock_path"]


def lock_path(target: str | os.PathLike) -> Path:
    """The lock file of ``target`` (``emb.npy`` → ``.emb.npy.lock``)."""
    target = Path(target)
    return target.with_name(f".{target.name}.lock")


def _write_holder(fd: int) -> None:
    """Record who holds the lock in the lock file itself (read by a second run's message)."""
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    text = f"host {socket.gethostname()}, pid {os.getpid()}, since {now}\n".encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, text, 0)


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text or "holder unknown"


@contextmanager
def hold(targets: Sequence[str | os.PathLike], *, wait: bool = False,
         wait_flag: str = "wait=True") -> Iterator[None]:
    """Hold the locks of all ``targets`` for the block, in a fixed (sorted) order.

    Parameters
    ----------
    targets : list of paths
        Files to be written (outputs, a manifest); each is locked through :func:`lock_path`.
    wait : bool
        Wait until another holder is done instead of failing.
    wait_flag : str
        How the message spells the option that waits (``"--wait"`` on the command line).

    Raises
    ------
    OutputLockedError
        If a target is locked by another process and not ``wait``; the message names the
        target and the holder.
    OutputError
        If a lock file cannot be created or written (a full disk, a read-only folder); the
        message names the lock file, and no lock file is left behind.
    """
    with ExitStack() as stack:
        for target in sorted({Path(t).absolute() for t in targets}):
            path = lock_path(target)
            failed: list[OSError] = []

            def record_holder(fd: int, failed: list[OSError] = failed) -> None:
                try:
                    _write_holder(fd)
                except OSError as exc:  # kept, so the lock is removed while still held
                    failed.append(exc)

            lock = FileLock(path, timeout=-1 if wait else 0, on_acquired=record_holder)
            try:
                lock.acquire()
            except Timeout:
                raise OutputLockedError(
                    f"{target} is being written by another geomfeat run ({_holder(path)}; "
                    f"lock {path.name}); wait for it to finish, or pass {wait_flag}") from None
            except OSError as exc:  # the lock file could not even be created
                raise write_error(path, exc.strerror or str(exc), f"the lock file {path}") \
                    from None
            if failed:
                _release(lock, path)
                raise write_error(path, failed[0].strerror or str(failed[0]),
                                  f"the lock file {path}")
            stack.callback(_release, lock, path)
        yield


def _release(lock: FileLock, path: Path) -> None:
    # unlinked while still held: a waiter that opened this inode sees it unlinked after
    # acquiring and retries on a fresh file (filelock checks), so no two runs ever both hold
    try:
        path.unlink(missing_ok=True)
    finally:
        lock.release()
