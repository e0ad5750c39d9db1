"""The record of an embedding run: per output what became of it, and the manifest file.

:class:`RunState` follows one :func:`~geomfeat.cluster.embed_jobs` call (plans, finished and
failed outputs, the progress bar, encoder loads per worker); :meth:`RunState.manifest` turns it
into a :class:`Manifest`, which :func:`write_manifest` merges into ``geomfeat-manifest.json``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import GeomfeatError
from .locks import hold
from .output import partial_path, write_json
from .progress import progress_bar

if TYPE_CHECKING:
    from .featurizer import GeomFeaturizer

__all__ = ["MANIFEST_NAME", "Manifest", "RunState", "write_manifest"]

#: File name of the manifest written into the output folder.
MANIFEST_NAME = "geomfeat-manifest.json"


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


class RunState:
    """State of one :func:`~geomfeat.cluster.embed_jobs` call: the jobs, their plans and what
    became of them (the progress bar, the manifest's entries, the errors)."""

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
        self.bar_total_known = False
        self._tty = False

    def bar(self, total: int = 0) -> Any:
        """The progress bar, shown from the first trajectory with frames to embed on.

        On a terminal it redraws itself; in a log file (stderr not a terminal) it writes a
        line every 10 s at most, each on its own line and none twice.
        """
        if self._bar is None:
            self._bar, self._tty = progress_bar(self.featurizer.model, total, self.progress)
        return self._bar

    def close_bar(self, clear: bool) -> None:
        """Close the bar; ``clear``: remove it from the terminal (an error follows)."""
        if self._bar is not None:
            if clear:
                self._bar.leave = False
            self._bar.close()

    def metadata(self, index: int, plan: dict[str, Any]) -> dict[str, Any]:
        """What the sidecar of job ``index`` records beyond its settings."""
        return {"trajectory": self.jobs[index][0], "topology": self.top,
                "batch_size": plan["batch_size"], "box_applied": plan["box_applied"]}

    def planned(self, index: int, plan: dict[str, Any]) -> None:
        """Record the plan of job ``index`` (frames, parts) and add its frames to the bar."""
        self.entries[index]["frames"] = plan["frames"]
        if plan["status"] == "complete":  # not on the bar: no work, and no absurd frames/s
            self.entries[index].update(status="complete", parts=0)
            return
        self.entries[index]["parts"] = len(plan["parts"])
        if self._bar is None:
            self.bar(plan["frames"])
        elif not self.bar_total_known:
            self._bar.total += plan["frames"]
            if self._tty:
                self._bar.refresh()

    def finished(self, index: int, parts: list[dict[str, Any]]) -> None:
        """Record job ``index`` as written, with its workers and encoder loads."""
        self.entries[index].update(
            status="written", seconds=round(time.perf_counter() - self.began[index], 3),
            workers=sorted({p["worker"] for p in parts if p["worker"] is not None}))
        for part in parts:
            name = part["worker"] or "this process"
            self.encoder_loads[name] = (self.encoder_loads.get(name, 0)
                                        + int(part["encoder_loaded"]))

    def failed(self, index: int, exc: BaseException) -> None:
        """Record job ``index`` as failed with ``exc`` and remove its ``.partial`` file."""
        self.exceptions.append(exc)
        message = str(exc) if isinstance(exc, GeomfeatError) else f"{type(exc).__name__}: {exc}"
        self.entries[index].update(status="failed", error=message)
        partial_path(self.jobs[index][1]).unlink(missing_ok=True)

    def discard_unfinished(self) -> None:
        """Remove the ``.partial`` files of outputs that were not finished."""
        for entry, (_, out) in zip(self.entries, self.jobs, strict=True):
            if entry["status"] == "pending":
                partial_path(out).unlink(missing_ok=True)

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
