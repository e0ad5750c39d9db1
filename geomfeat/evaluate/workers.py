"""Scoring the feature sets of a comparison in worker processes.

The work of :func:`~geomfeat.evaluate.protocol.compare` after the features are built is cut
into *units*: one per feature set and seed in a pool, one per feature set in this process. A
unit scores its feature set at every lag on its splits
(:func:`~geomfeat.evaluate.protocol.score_splits`: linear VAMP, and all seeds' and restarts'
VAMPNets as one batched model). Units run in a pool of ``workers`` processes
(``spawn``; each with ``threads`` torch threads), the most expensive first, or in this process
when ``workers == 1``. A unit computes the same numbers wherever it runs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

import numpy as np

from .features import FeatureSet
from .recipe import VAMPNetRecipe
from .splits import Split

__all__ = ["MIN_STEPS_FOR_WORKERS", "auto_workers", "available_cpus", "score_units"]

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
              recipe: VAMPNetRecipe | None, device: str, threads: int | None
              ) -> tuple[list[tuple[dict, dict]], float]:
    import torch

    from .protocol import score_splits

    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    out = score_splits(fs, splits, lags, dims=dims, recipe=recipe, device=device)
    return out, time.perf_counter() - t0


def score_units(sets: dict[str, FeatureSet], splits: Sequence[Split], lags: Sequence[int], *,
                dims: Sequence[int], recipe: VAMPNetRecipe | None, device: str = "cpu",
                workers: int = 1, threads: int | None = None,
                log: Callable[[str], None] | None = None
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
        As for :func:`~geomfeat.evaluate.protocol.score_splits`.
    workers : int
        Processes (1: this process).
    threads : int, optional
        Torch threads per worker process (None: leave torch's default).
    log : callable, optional
        Called with one line per finished unit.

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

    def done(name: str, ks: list[int], out: list[tuple[dict, dict]], seconds: float) -> None:
        for k, res in zip(ks, out, strict=True):
            merged[name][k] = res
        if log is not None:
            log(f"{name}: seed{'s' if len(ks) > 1 else ''} "
                f"{', '.join(str(splits[k].seed) for k in ks)} scored [{seconds:.0f} s]")

    if workers <= 1:
        for name, ks in units:
            done(name, ks, *_run_unit(sets[name], [splits[k] for k in ks], lags, dims, recipe,
                                      device, None))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as ex:
            futures = {ex.submit(_run_unit, sets[name], [splits[k] for k in ks], lags, dims,
                                 recipe, device, threads): (name, ks) for name, ks in units}
            for f in as_completed(futures):
                done(*futures[f], *f.result())
    return merged
