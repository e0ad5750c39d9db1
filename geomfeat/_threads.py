"""PyTorch's intra-op thread count: a default that holds up on shared CPUs, and a setting per block.

Why a default of our own: PyTorch starts one OpenMP thread per core it sees, and every parallel
operation waits for all of them. On a machine where other processes also want the cores (a
shared workstation, a busy cluster node, a container with a CPU quota) one of those threads is
often not running, and the others wait for it, spinning (libgomp spins before it sleeps). An
embedding of small molecules, made of many short operations, then runs 4-8x slower than with
one thread (``docs/performance.md``, "CPU under contention"). So the default is

* at most the cores this process may use: its affinity mask (``taskset``, Slurm's cpusets), and
  its cgroup CPU quota (``docker --cpus``, Kubernetes limits), which ``os.cpu_count()`` ignores;
* less the cores other processes kept busy since this one started (``/proc/stat``, measured
  over the start-up, this process's own time taken out), at least one;
* with ``OMP_WAIT_POLICY=PASSIVE`` (set by :func:`prefer_passive_wait` when ``geomfeat`` is
  imported before torch and the variable is unset): waiting threads sleep instead of spinning.

``OMP_NUM_THREADS`` set by the user wins over all of this. The choice is made once per process
(:func:`default_threads`), so one process's outputs use one thread count; float32 results
depend on it at the 1e-6 level, and sidecars record it.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TypeVar

__all__ = ["auto_threads", "cgroup_cpu_limit", "cpu_limit", "default_threads",
           "prefer_passive_wait", "torch_threads"]

T = TypeVar("T")

#: Root of the cgroup file system (cgroup v2 unified, or the v1 controller folders).
CGROUP_ROOT = Path("/sys/fs/cgroup")
#: Shortest window over which the other processes' CPU use is measured, seconds.
MIN_WINDOW = 0.2
#: A thread is started only for a core that is at least this much free.
FREE_CORE = 0.7


def prefer_passive_wait() -> None:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` if unset and torch's OpenMP is not loaded yet.

    libgomp reads the variable once, when torch is imported; afterwards it changes nothing.
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _affinity() -> set[int]:
    """The CPUs this process may run on."""
    try:
        return os.sched_getaffinity(0)
    except (AttributeError, OSError):  # not Linux
        return set(range(os.cpu_count() or 1))


def _cgroup_paths(root: Path, proc_cgroup: Path) -> list[Path]:
    """Folders of this process's cgroup and its parents, innermost first (v2, then v1 cpu)."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return []
    folders = []
    for line in lines:
        hierarchy, controllers, path = line.split(":", 2)
        if hierarchy == "0" and controllers == "":  # cgroup v2
            bases = [root]
        elif "cpu" in controllers.split(","):  # cgroup v1 cpu controller
            bases = [root / controllers, root / "cpu", root / "cpu,cpuacct"]
        else:
            continue
        parts = [p for p in path.strip("/").split("/") if p]
        for base in bases:
            for depth in range(len(parts), -1, -1):
                folders.append(base.joinpath(*parts[:depth]))
    return folders


def cgroup_cpu_limit(root: Path = CGROUP_ROOT,
                     proc_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """This process's cgroup CPU quota in cores (``None``: no quota).

    cgroup v2 ``cpu.max`` (``QUOTA PERIOD`` or ``max PERIOD``) or v1 ``cpu.cfs_quota_us`` /
    ``cpu.cfs_period_us`` (quota ``-1``: none), of the process's cgroup and every parent; the
    smallest applies. ``root`` and ``proc_cgroup`` are parameters for tests.
    """
    limits = []
    for folder in _cgroup_paths(root, proc_cgroup):
        try:
            quota, period = (folder / "cpu.max").read_text().split()[:2]
        except (OSError, ValueError):
            try:
                quota = (folder / "cpu.cfs_quota_us").read_text().strip()
                period = (folder / "cpu.cfs_period_us").read_text().strip()
            except OSError:
                continue
        if quota not in ("max", "-1") and float(period) > 0:
            limits.append(float(quota) / float(period))
    return min(limits) if limits else None


def cpu_limit(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> int:
    """Cores this process may use: its affinity mask, capped by the cgroup quota (at least 1).

    A fractional quota is rounded down (1.5 cores: one thread keeps within it).
    """
    cores = len(_affinity())
    quota = cgroup_cpu_limit(root, proc_cgroup)
    if quota is not None:
        cores = min(cores, math.floor(quota))
    return max(1, cores)


def _busy_snapshot() -> tuple[float, float, float] | None:
    """(monotonic s, busy CPU-seconds of this process's CPUs, this process's CPU-seconds)."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    cpus = {f"cpu{n}" for n in _affinity()}
    busy = 0
    for line in lines:
        fields = line.split()
        if fields and fields[0] in cpus:  # user nice system idle iowait irq softirq steal
            ticks = [int(x) for x in fields[1:9]]
            busy += sum(ticks) - ticks[3] - ticks[4]
    own = os.times()
    return (time.monotonic(), busy / os.sysconf("SC_CLK_TCK"), own.user + own.system)


#: The snapshot the window of :func:`default_threads` starts at (``geomfeat``'s import).
_START = _busy_snapshot()
_START_CORES = len(_affinity())
_CHOSEN: int | None = None
#: Whether a :func:`torch_threads` block with an explicit count is active.
_EXPLICIT: ContextVar[bool] = ContextVar("geomfeat_explicit_threads", default=False)


def free_cores(start: tuple[float, float, float] | None = None) -> float | None:
    """Cores of this process's CPUs that other processes left idle since ``start``.

    Measured from ``/proc/stat`` (this process's own CPU time taken out) over at least
    :data:`MIN_WINDOW` seconds (it waits for the rest); ``None`` where ``/proc`` is missing.
    """
    start = start or _START
    if start is None:
        return None
    wait = MIN_WINDOW - (time.monotonic() - start[0])
    if wait > 0:
        time.sleep(wait)
    end = _busy_snapshot()
    if end is None:
        return None
    others = max(0.0, (end[1] - start[1]) - (end[2] - start[2])) / (end[0] - start[0])
    return len(_affinity()) - others


def default_threads(*, divide: int = 1) -> int:
    """PyTorch threads for this process's work on the CPU (see the module docstring).

    ``OMP_NUM_THREADS`` if set; else the cores this process may use (:func:`cpu_limit`) that
    other processes left free (:func:`free_cores`), at least 1, shared among ``divide``
    processes (workers of a local Dask cluster) and chosen once per process.
    """
    global _CHOSEN
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return max(1, int(env) // divide)
    if _CHOSEN is None:
        cores = cpu_limit()
        free = free_cores()
        if free is not None:
            cores = min(cores, max(1, math.floor(free + (1 - FREE_CORE))))
        _CHOSEN = cores
    return max(1, _CHOSEN // divide)


def auto_threads(device_type: str = "cpu") -> int | None:
    """Threads for the Python API's work on the CPU: :func:`default_threads`, or ``None``.

    ``None`` (leave PyTorch's setting alone) inside an explicit :func:`torch_threads` block,
    for other devices than the CPU, and where the user chose a count of their own
    (``OMP_NUM_THREADS``, or ``torch.set_num_threads`` to another number than PyTorch's default,
    the cores of the affinity mask when torch started).
    """
    if device_type != "cpu" or _EXPLICIT.get() or "OMP_NUM_THREADS" in os.environ:
        return None
    import torch

    if torch.get_num_threads() not in {len(_affinity()), _START_CORES, os.cpu_count()}:
        return None
    return default_threads()


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` PyTorch threads (``None``: leave the setting alone).

    Float32 results depend on the thread count at the 1e-6 level, so the parallel paths
    (:mod:`geomfeat.cluster`, :mod:`geomfeat.mdanalysis`) take it as an explicit setting,
    which :func:`auto_threads` inside the block leaves alone.
    """
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    token = _EXPLICIT.set(True)
    try:
        yield
    finally:
        _EXPLICIT.reset(token)
        torch.set_num_threads(before)
