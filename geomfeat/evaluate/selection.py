"""``select_features``: the best kinetic features for the user's trajectories, end to end.

Loads the trajectories, lists the candidate families (:mod:`~geomfeat.evaluate.families`,
within a dimension budget), computes them (:func:`~geomfeat.evaluate.features.build_feature_sets`,
encoder readouts cached), runs the forward selection on validation VAMP-2
(:mod:`~geomfeat.evaluate.select`), scores the choice and the single families on the test part
once, and writes the report and the chosen set's features (one ``.npy`` per trajectory).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._version import __version__
from ..errors import GeomfeatError
from .families import DEFAULT_MAX_DIMS, default_families
from .features import build_feature_sets, load_trajectories
from .lags import parse_lag
from .preflight import block_length
from .protocol import log_line
from .recipe import VAMPNetRecipe
from .select import Selector, final_features, inner_splits
from .splits import make_split

__all__ = ["DEFAULT_MAX_PCA", "SelectionResult", "select_features"]

#: Largest PCA dimension tried per family.
DEFAULT_MAX_PCA = 256



@dataclass
class SelectionResult:
    """A feature selection: ``report`` (JSON-ready), the chosen set and its features.

    ``features``: the chosen set's arrays per trajectory (float32, ``(T_i, D)``);
    ``selector``: the :class:`~geomfeat.evaluate.select.Selector` (reduced blocks per seed),
    e.g. to score further sets on the test part in a benchmark.
    """

    report: dict
    features: list[np.ndarray] = field(default_factory=list, repr=False)
    selector: Selector | None = field(default=None, repr=False)

    @property
    def chosen(self) -> str:
        """The chosen set as a spec string (``A+B``), usable in ``geomfeat compare``."""
        return self.report["selection"]["name"]

    def markdown(self) -> str:
        from .selection_report import markdown

        return markdown(self.report)


def select_features(top: str | os.PathLike, trajs: Sequence[str | os.PathLike] | str,
                    lag: str | int, *, families: Sequence[str] | None = None,
                    models: Sequence[str] | None = None, extra: Sequence[str] = (),
                    seeds: Sequence[int] = (0, 1, 2), test_seed: int = 0, split: str = "block",
                    n_blocks: int | None = None, block: str | int | None = None,
                    val_fraction: float = 0.2, test_fraction: float = 0.2,
                    stride: int = 1, timestep: float | None = None, k: int = 4,
                    noise: float = 1.0, max_set: int = 4, max_dims: int = DEFAULT_MAX_DIMS,
                    max_pca: int = DEFAULT_MAX_PCA,
                    vampnet: VAMPNetRecipe | None = None, select: str = "heavy",
                    reduce: str = "sum", cache: str | os.PathLike | None = None,
                    device: str = "cpu", out: str | os.PathLike | None = None,
                    name: str = "select", write_features: bool = True,
                    log: Callable[[str], None] | None = log_line,
                    command: str | None = None) -> SelectionResult:
    """Choose the feature families that give the best kinetic model, on validation only.

    Parameters
    ----------
    top, trajs : path, path or sequence of path
        Topology and trajectories (as mdtraj reads them).
    lag : str or int
        Lag time (``"20ps"`` or frames after ``stride``).
    families : sequence of str, optional
        Candidate families (spec strings); default :func:`default_families` of ``models``.
    models : sequence of str, optional
        Encoders whose readouts are candidates (default: every registered model); ignored when
        ``families`` is given.
    extra : sequence of str
        Further candidates (e.g. ``npy:PATH``), added to either list.
    seeds : sequence of int
        Re-deals of training and validation (the test part is dealt once, by ``test_seed``).
    split, n_blocks, block, val_fraction, test_fraction, stride, timestep
        As in :func:`~geomfeat.evaluate.compare` (the same default block length).
    k : int
        VAMP-2 output dimension (linear VAMP).
    noise : float
        A family is added when its mean validation improvement exceeds ``noise`` × the sd of
        its per-seed improvements (and 0).
    max_set : int
        Most families in the chosen set.
    max_dims : int
        Budget: features per frame of any family (pair families above it are subsampled,
        other families left out).
    max_pca : int
        Largest PCA dimension tried per family (the dimension is chosen inside the training
        part).
    vampnet : VAMPNetRecipe, optional
        Train VAMPNets on the finalists (choice and runner-up); None: linear only.
    select, reduce, cache, device
        Encoder settings, as in :func:`~geomfeat.evaluate.compare`.
    out : path, optional
        Folder for ``NAME.json``, ``NAME.md`` and ``NAME_features/<trajectory stem>.npy``.

    Returns
    -------
    SelectionResult
    """
    import torch

    t_start = time.perf_counter()
    log = log or (lambda s: None)
    if isinstance(trajs, (str, os.PathLike)):
        trajs = [trajs]
    if not seeds:
        raise GeomfeatError("no seeds given")
    if max_set < 1:
        raise GeomfeatError(f"max_set must be >= 1, got {max_set}")
    if noise < 0:
        raise GeomfeatError(f"noise must be >= 0, got {noise}")
    if out is not None and not Path(out).parent.is_dir():
        raise GeomfeatError(f"output folder's parent does not exist: {Path(out).parent}")
    data = load_trajectories(top, trajs, stride=stride, timestep=timestep)
    lag_ = parse_lag(lag, data.dt_ps)
    topology, frames = data.trajs[0].topology, sum(data.lengths)
    if families is None and models is None:
        from ..registry import list_models

        models = list_models()
    fams, left_out = default_families(topology, frames, models=models or (), extra=extra,
                                      max_dims=max_dims, specs=families)
    if len({f.spec for f in fams}) != len(fams):
        raise GeomfeatError(f"families repeat: {[f.spec for f in fams]}")
    if not fams:
        raise GeomfeatError("no candidate family within the budget: " + "; ".join(
            f"{d['spec']}: {d['reason']}" for d in left_out))
    for d in left_out:
        log(f"left out {d['spec']}: {d['reason']}")
    block_ = block_length(block, n_blocks, split, [lag_], data)
    outer = make_split(data.lengths, by=split, n_blocks=n_blocks,
                       block=None if block_ is None else int(block_), val_fraction=val_fraction,
                       test_fraction=test_fraction, seed=test_seed, min_length=int(lag_) + 1)
    splits = inner_splits(outer, seeds, val_fraction)
    sets, embedding = build_feature_sets([f.spec for f in fams], data, select=select,
                                         reduce=reduce, cache=cache, device=device, log=log)
    arrays = {n: fs.data for n, fs in sets.items()}
    selector = Selector(arrays, splits, int(lag_), k=k, max_dim=max_pca, log=log)
    record = selector.forward(noise=noise, max_set=max_set)
    log(f"chosen on validation: {record['name']} (runner-up {record['runner_up']})")
    stage = None
    if vampnet is not None:
        stage = selector.vampnet_stage(record, vampnet, noise=noise, device=device)
        log(f"VAMPNet finalists: {stage['val']}; chosen {record['name']}")
    test = selector.test_stage(record)
    dims = selector.final_dims(record["chosen"])
    features, kept = final_features(arrays, dims, seed=test_seed)
    costs = {f.spec: {**f.as_dict(), "dims": int(np.prod(sets[f.spec].frame_shape)),
                      "frame_shape": list(sets[f.spec].frame_shape),
                      "build_s": round(sets[f.spec].seconds, 2),
                      "reduce_s": round(selector.seconds[f.spec], 2),
                      "reduced_dims": [r.dim for r in selector.reductions[f.spec]],
                      "val_by_dim": [r.val_scores for r in selector.reductions[f.spec]],
                      "description": sets[f.spec].description} for f in fams}
    report = {
        "geomfeat": __version__, "system": Path(top).stem, "command": command,
        "data": data.as_dict(), "lag": lag_.as_dict(),
        "settings": {"seeds": list(seeds), "test_seed": test_seed, "split": split,
                     "n_blocks": n_blocks,
                     "block": None if block_ is None else block_.as_dict(),
                     "val_fraction": val_fraction,
                     "test_fraction": test_fraction, "stride": stride, "k": k, "noise": noise,
                     "max_set": max_set, "max_dims": max_dims, "max_pca": max_pca,
                     "select": select,
                     "reduce": reduce, "models": list(models or []),
                     "vampnet": vampnet.as_dict() if vampnet is not None else None,
                     "threads": torch.get_num_threads()},
        "splits": [sp.as_dict() for sp in splits],
        "families": costs, "left_out": left_out, "embedding": embedding,
        "selection": record, "vampnet_stage": stage, "test": test,
        "final_features": {"families": kept, "dims": int(sum(kept.values())),
                           "spec": record["name"],
                           "how": "each family standardised and reduced by PCA (whitened) to "
                                  "the median of the per-seed chosen dimensions, fitted on all "
                                  "frames; families concatenated"},
        "host": {"platform": platform.platform(), "python": platform.python_version(),
                 "cpus": os.cpu_count()},
        "timings": {"total_s": round(time.perf_counter() - t_start, 1)},
    }
    result = SelectionResult(report, features, selector)
    if out is not None:
        from .selection_report import write_selection

        files = write_selection(result, Path(out), name, data.paths,
                                write_features=write_features)
        log("wrote " + ", ".join(str(f) for f in files[:3])
            + (f" and {len(files) - 3} feature files" if len(files) > 3 else ""))
    return result
