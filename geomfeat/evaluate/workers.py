"""Scoring the feature sets of a comparison in worker processes.

The work of :func:`~geomfeat.evaluate.protocol.compare` after the features are built is cut
into *units*: one per feature set and seed in a pool, one per feature set in this process. A
unit scores its feature set at every lag on its splits
(:func:`~geomfeat.evaluate.scoring.score_splits`: linear VAMP, and all seeds' and restarts'
VAMPNets as one batched model). Units run in a pool of ``workers`` processes
(``spawn``; each with ``threads`` torch threads), the most expensive first, or in this process
when ``workers == 1``. A unit computes the same numbers wherever it runs. After each unit the
log gets a line with its time and an estimate of the time left; a unit in this process shows
a progress bar for its VAMPNet fit, a unit in a worker process none.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

import numpy as np

from .features import FeatureSet
from .recipe import VAMPNetRecipe
from .splits import Split

__all__ = ["MIN_STEPS_FOR_WORKERS", "auto_workers", "available_cpus", "duration", "score_units",
           "time_left"]

#: ``workers=None`` starts processes only for at least this many VAMPNet optimizer steps in all
#: (a worker's start, ~5 s of imports, costs more than it saves on tiny comparisons).
MIN_STEPS_FOR_WORKERS = 20_000


def available_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (macOS, Windows)
        return os.cpu_count() or 1


def auto_workers(n_units: int, n_networks: int, recipe: VAMPNetRecipe | None,
                 device: str = "cpu") -> int:
    """Worker processes for ``workers=None``: one per CPU (at most one per unit) on the CPU
    when the VAMPNets need at least :data:`MIN_STEPS_FOR_WORKERS` steps at most; else 1."""
    if recipe is None or not str(device).startswith("cpu"):
        return 1
    steps = n_networks * recipe.max_epochs * recipe.steps_per_epoch
    return min(available_cpus(), n_units) if steps >= MIN_STEPS_FOR_WORKERS else 1


def _cost(fs: FeatureSet) -> float:
    """Rough relative cost of a unit (token lobes first, then wider inputs)."""
    return (len(fs.frame_shape) > 1) * 1e9 + float(np.prod(fs.frame_shape))


def _run_unit(fs: FeatureSet, splits: Sequence[Split], lags: Sequence[int], dims: Sequence[int],
              recipe: VAMPNetRecipe | None, device: str, threads: int | None,
              progress: bool = False) -> tuple[list[tuple[dict, dict]], float]:
    import torch

    from .scoring import score_splits

    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    out = score_splits(fs, splits, lags, dims=dims, recipe=recipe, device=device,
                       progress=progress)
    return out, time.perf_counter() - t0


def score_units(sets: dict[str, FeatureSet], splits: Sequence[Split], lags: Sequence[int], *,
                dims: Sequence[int], recipe: VAMPNetRecipe | None, device: str = "cpu",
                workers: int = 1, threads: int | None = None,
                log: Callable[[str], None] | None = None, progress: bool = False
                ) -> dict[str, list[tuple[dict, dict]]]:
    """Score every feature set at every lag on every split.

    Parameters
    ----------
    sets : dict of FeatureSet
        The feature sets by name.
    splits : sequence of Split
        One per seed.
    lags : sequence of int
        Lag times in frames.
    dims, recipe, device
        As for :func:`~geomfeat.evaluate.scoring.score_splits`.
    workers : int
        Processes (1: this process).
    threads : int, optional
        Torch threads per worker process (None: leave torch's default).
    log : callable, optional
        Called with one line per finished unit: its time and, while units remain, about how
        long the others will take.
    progress : bool
        A progress bar per VAMPNet fit of a unit run in this process (``workers == 1``).

    Returns
    -------
    dict
        ``{name: [(scores, outputs) per split]}`` with ``scores[str(lag)]`` and
        ``outputs[str(lag)]`` for every lag, as :func:`score_splits` returns them.
    """
    # in a pool one unit per feature set and seed (balanced, the seed's lobes initialised once);
    # in this process one per feature set (the largest batches)
    n = len(splits)
    units = sorted(((name, [k]) for name in sets for k in range(n)) if workers > 1 else
                   ((name, list(range(n))) for name in sets), key=lambda u: -_cost(sets[u[0]]))
    merged: dict[str, list[tuple[dict, dict]]] = {name: [({}, {})] * n for name in sets}

    cost: dict[str, list[float]] = {name: [] for name in sets}  # s per unit, for the ETA
    per_set = n if workers > 1 else 1

    def done(name: str, ks: list[int], out: list[tuple[dict, dict]], seconds: float) -> None:
        for k, res in zip(ks, out, strict=True):
            merged[name][k] = res
        cost[name].append(seconds)
        left = time_left(cost, per_set, max(1, workers))
        if log is not None:
            log(f"{name}: seed{'s' if len(ks) > 1 else ''} "
                f"{', '.join(str(splits[k].seed) for k in ks)} scored [{seconds:.0f} s"
                + (f"; about {duration(left)} left]" if left is not None else "]"))

    if workers <= 1:
        for name, ks in units:
            done(name, ks, *_run_unit(sets[name], [splits[k] for k in ks], lags, dims, recipe,
                                      device, None, progress))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as ex:
            futures = {ex.submit(_run_unit, sets[name], [splits[k] for k in ks], lags, dims,
                                 recipe, device, threads): (name, ks) for name, ks in units}
            for f in as_completed(futures):
                done(*futures[f], *f.result())
    return merged


def time_left(cost: dict[str, list[float]], per_set: int, workers: int = 1) -> float | None:
    """Estimated seconds until every feature set's ``per_set`` units are scored, from the
    unit times so far (a set not yet timed: the mean of the others), shared by ``workers``
    processes; ``None`` when nothing is left."""
    timed = [t for times in cost.values() for t in times]
    mean_all = sum(timed) / len(timed)
    left = sum((per_set - len(times)) * (sum(times) / len(times) if times else mean_all)
               for times in cost.values())
    return left / workers if any(len(times) < per_set for times in cost.values()) else None


def duration(seconds: float) -> str:
    """``42 s``, ``12 min`` or ``1.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
