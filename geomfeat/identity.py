"""Identity of input files, recorded in a sidecar so that "complete" means "from these inputs".

A file's identity is its resolved path, size, modification time and the SHA-256 of a bounded
sample of its bytes (the first and the last MiB; cheap on a 100 GB trajectory). Two identities
are the same input when size and sample hash agree (and, for the trajectory, the number of
frames read); a file moved or copied elsewhere keeps its identity. A file rewritten in place
(same path, later modification time) counts as changed even if size and sample agree, since
its middle may differ.
"""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["SAMPLE_BYTES", "file_identity", "identity_changes"]

#: Bytes hashed at each end of a file.
SAMPLE_BYTES = 2**20


def file_identity(path: str | os.PathLike) -> dict[str, Any]:
    """``{"path", "size", "mtime", "sample_sha256"}`` of ``path`` (see the module notes)."""
    path = Path(path).resolve()
    stat = path.stat()
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        digest.update(handle.read(SAMPLE_BYTES))
        if stat.st_size > SAMPLE_BYTES:
            handle.seek(max(SAMPLE_BYTES, stat.st_size - SAMPLE_BYTES))
            digest.update(handle.read(SAMPLE_BYTES))
    mtime = datetime.fromtimestamp(stat.st_mtime, timezone.utc).isoformat(timespec="microseconds")
    return {"path": str(path), "size": stat.st_size, "mtime": mtime,
            "sample_sha256": digest.hexdigest()}


def identity_changes(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """What changed between two ``{role: identity}`` records, one phrase each (empty: same).

    ``old`` is what a sidecar recorded (``None`` if it recorded nothing), ``new`` the inputs
    of this run. Roles are ``"trajectory"`` and ``"topology"``.
    """
    if not old:
        return ["the sidecar does not record its inputs (made by an older geomfeat)"]
    changes = []
    for role, now in new.items():
        before = old.get(role)
        if not isinstance(before, dict):
            changes.append(f"{role} not recorded")
            continue
        what = []
        if before.get("path") != now["path"]:
            what.append(f"{before.get('path')} → {now['path']}")
        if before.get("size") != now["size"]:
            what.append(f"size {before.get('size')} → {now['size']} bytes")
        elif before.get("sample_sha256") != now["sample_sha256"]:
            what.append("content differs (SHA-256 of its first and last MiB)")
        elif before.get("path") == now["path"] and before.get("mtime") != now["mtime"]:
            what.append(f"modified since (mtime {before.get('mtime')} → {now['mtime']})")
        if "frames" in now and before.get("frames") != now["frames"]:
            what.append(f"frames {before.get('frames')} → {now['frames']}")
        content = [w for w in what if not w.startswith(str(before.get("path")) + " →")]
        if content:  # a moved or copied file with the same content is the same input
            changes.append(f"{role} {', '.join(what)}")
    return changes
