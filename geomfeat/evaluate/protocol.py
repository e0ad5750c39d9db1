"""The comparison protocol: every feature set, lag and seed on the same splits.

For each seed one split (train / validation / test, :func:`~geomfeat.evaluate.splits.make_split`)
is drawn and used for every feature set and lag, so scores can be compared seed by seed. For
each feature set, lag and seed:

1. features are standardised with the training part's mean and sd;
2. **linear VAMP** is fitted on the training part and its VAMP-2 for output dimensions
   ``k = 1 … n_states - 1`` is scored on the test part (no choice is made, so validation is
   not used);
3. **VAMPNets** (:mod:`~geomfeat.evaluate.vampnet`) are trained on the training part; early
   stopping and the best of the restarts are chosen on the validation part; the chosen lobe's
   outputs are scored on the test part by the same estimator as the linear models (VAMP fitted
   on the training part's outputs, scored against the test part's covariances). deeptime's
   usual VAMPNet score (Koopman matrix re-estimated on the test pairs) is stored beside it.

The test part is only ever read in step 2/3's final scoring.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .._version import __version__
from ..errors import GeomfeatError
from .features import (
    DEFAULT_FEATURES,
    Trajectories,
    build_feature_sets,
    load_trajectories,
    parse_spec,
)
from .lags import Lag, parse_lags
from .preflight import block_length, check_lags, resolve_device
from .recipe import VAMPNetRecipe
from .result import CompareResult
from .scoring import score_feature_set, score_splits
from .splits import Split, make_split
from .stats import paired, summary
from .workers import auto_workers, available_cpus, score_units

__all__ = ["DEFAULT_FEATURES", "CompareResult", "compare", "score_feature_set", "score_splits"]


def log_line(msg: str) -> None:
    """A log line on stderr, with the time of day (the default ``log`` of :func:`compare`)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def compare(top: str | os.PathLike, trajs: Sequence[str | os.PathLike] | str | os.PathLike,
            lags: Sequence[str | int], *, features: Sequence[str] = DEFAULT_FEATURES,
            reference: str | None = "distances", seeds: Sequence[int] = (0, 1, 2),
            split: str = "block", block: str | int | None = None,
            n_blocks: int | None = None, val_fraction: float = 0.2,
            test_fraction: float = 0.2, stride: int = 1, timestep: float | None = None,
            n_linear: int | None = None, vampnet: bool = True,
            recipe: VAMPNetRecipe | None = None, select: str = "heavy", reduce: str = "sum",
            cache: str | os.PathLike | None = None, device: str | None = None,
            threads: int | None = None, workers: int | None = 1,
            out: str | os.PathLike | None = None,
            name: str = "compare", log: Callable[[str], None] | None = log_line,
            command: str | None = None, progress: bool = False) -> CompareResult:
    """Compare feature sets for kinetic models with an unbiased train/validation/test protocol.

    Parameters
    ----------
    top : path
        Topology (anything mdtraj reads with the trajectories).
    trajs : path or sequence of path
        Trajectory files.
    lags : sequence of str or int
        Lag times: ``"20ps"``, ``"0.1ns"`` or frames (after ``stride``).
    features : sequence of str
        Feature-set specs (:mod:`geomfeat.evaluate.features`), e.g.
        ``["visnet-denali:graph:invariant:all", "distances", "torsions"]``.
    reference : str or None
        Feature set the others are compared with, seed by seed (default ``"distances"``;
        ``None``: no comparison). Added to ``features`` when missing.
    seeds : sequence of int
        One split (and VAMPNet initialisation) per seed; no seed may repeat.
    split : {"block", "trajectory"}
        Deal contiguous blocks or whole trajectories.
    block : str or int, optional
        Length of a block: a time (``"200ps"``) or frames (after ``stride``); a trajectory of
        ``n`` frames is cut into ``n // block`` equal blocks, a shorter one is kept whole.
        Default (neither ``block`` nor ``n_blocks``): the longer of 5 × the longest lag (at
        least 80 % of a block's frames start a pair at that lag) and the longest trajectory
        / 10 (the ten blocks per trajectory of earlier versions), shorter where that would
        not give three pieces. Trajectories shorter than the longest lag + 1 hold no pair and
        are left out (listed in the log and the report).
    n_blocks : int, optional
        Instead of ``block``: blocks per trajectory (fewer for a trajectory too short for
        that many blocks of the longest lag + 1 frames).
    val_fraction, test_fraction : float
        Fractions of blocks/trajectories for validation and test.
    stride : int
        Analyse every ``stride``-th frame.
    timestep : float, optional
        ps between the frames of the files, when they do not record it.
    n_linear : int, optional
        Linear VAMP-2 is reported for ``k = 1 … n_linear`` (default ``recipe.n_states - 1``,
        the VAMPNet's ceiling).
    vampnet : bool
        Train VAMPNets (else linear VAMP only).
    recipe : VAMPNetRecipe, optional
        VAMPNet settings (default :class:`VAMPNetRecipe()`).
    select, reduce : str
        Atoms embedded and pooling of the encoder readouts.
    cache : path, optional
        Folder of cached encoder readouts (default
        :func:`~geomfeat.evaluate.readouts.readout_cache_dir`: ``$GEOMFEAT_EVAL_CACHE``, else
        ``evaluate/`` in geomfeat's cache, ``$GEOMFEAT_CACHE`` or ``~/.cache/geomfeat``).
    device : str, optional
        Torch device for embedding and training (default: CUDA when available, else CPU).
    threads : int, optional
        Torch CPU threads (one is fastest for the small lobes on a busy machine); shared out
        among the worker processes.
    workers : int or None
        Processes that score the feature sets (:mod:`~geomfeat.evaluate.workers`); default 1
        (this process); None: one per CPU for comparisons with VAMPNets on the CPU large
        enough to pay their start (:func:`~geomfeat.evaluate.workers.auto_workers`).
    out : path, optional
        Write the report (JSON, markdown, plots) into this folder as ``name.*``.
    log : callable, optional
        Receives progress messages (``None``: silent).
    progress : bool
        Progress bars on stderr: frames/s per encoder pass, network-epochs per batched
        VAMPNet fit (one per feature set; none in worker processes).

    Returns
    -------
    CompareResult
    """
    import torch

    t_start = time.perf_counter()
    log = log or (lambda s: None)
    if threads:
        torch.set_num_threads(int(threads))
    recipe = recipe or VAMPNetRecipe()
    if isinstance(trajs, (str, os.PathLike)):
        trajs = [trajs]
    features = list(features)
    if not features:
        raise GeomfeatError("no feature sets given")
    if reference is not None and reference not in features:
        features.append(reference)
    if not lags:
        raise GeomfeatError("no lag times given")
    if not seeds:
        raise GeomfeatError("no seeds given")
    repeated = sorted({s for s in seeds if list(seeds).count(s) > 1})
    if repeated:
        raise GeomfeatError(f"seeds {' '.join(map(str, seeds))} repeat seed "
                            f"{', '.join(map(str, repeated))}: each seed is one paired sample")
    if block is not None and n_blocks is not None:
        raise GeomfeatError("give a block length or a number of blocks, not both")
    if split == "trajectory" and (block is not None or n_blocks is not None):
        raise GeomfeatError("a block length or number of blocks applies to a split by block, "
                            "not by trajectory")
    for spec in features:  # every spec is checked before any work
        parse_spec(spec)
    device = resolve_device(device)
    if out is not None and not Path(out).parent.is_dir():
        raise GeomfeatError(f"output folder's parent does not exist: {Path(out).parent}")
    data: Trajectories = load_trajectories(top, trajs, stride=stride, timestep=timestep)
    lag_list: list[Lag] = parse_lags(lags, data.dt_ps)
    log(f"{len(data.trajs)} trajectories, {sum(data.lengths)} frames, "
        f"{data.dt_ps if data.dt_ps is not None else 'unknown'} ps per frame; lags "
        + ", ".join(f"{lag.text} = {int(lag)} frames" for lag in lag_list))
    check_lags(lag_list, data, split)
    block_lag = block_length(block, n_blocks, split, lag_list, data)
    splits = [make_split(data.lengths, by=split, n_blocks=n_blocks,
                         block=None if block_lag is None else int(block_lag),
                         val_fraction=val_fraction, test_fraction=test_fraction, seed=s,
                         min_length=max(lag_list) + 1)
              for s in seeds]
    for sp in splits:
        log(_split_line(sp, data, max(lag_list)))
    t0 = time.perf_counter()
    sets, embedding = build_feature_sets(features, data, select=select, reduce=reduce,
                                         cache=cache, device=device, log=log, progress=progress)
    features_s = time.perf_counter() - t0
    dims = list(range(1, (n_linear or recipe.n_states - 1) + 1))
    scores: dict = {name_: {str(int(lag)): {"linear": {"per_seed": []},
                                            "vampnet": {"per_seed": []}}
                            for lag in lag_list} for name_ in sets}
    outputs: dict = {}
    t1 = time.perf_counter()
    if workers is None:
        workers = auto_workers(len(sets) * len(splits), len(sets) * len(lag_list) * len(splits)
                               * recipe.restarts, recipe if vampnet else None, device)
    log(f"scoring {len(sets)} feature sets × {len(lag_list)} lags × {len(splits)} seeds in "
        f"{workers} process{'es' if workers > 1 else ''}")
    units = score_units(sets, splits, [int(lag) for lag in lag_list], dims=dims,
                        recipe=recipe if vampnet else None, device=device, workers=workers,
                        threads=max(1, (threads or available_cpus()) // workers), log=log,
                        progress=progress)
    vampnet_s = time.perf_counter() - t1
    for k, sp in enumerate(splits):
        for fs_name in sets:
            res, outs = units[fs_name][k]
            if sp.seed == splits[0].seed:
                outputs[fs_name] = outs
            for lag, entry in res.items():
                s = scores[fs_name][lag]
                s["linear"]["per_seed"].append(entry["linear"])
                if "vampnet" in entry:
                    s["vampnet"]["per_seed"].append(entry["vampnet"])
            log(f"seed {sp.seed} {fs_name}: " + "; ".join(
                f"lag {lag}: linear k={dims[-1]} {entry['linear'][str(dims[-1])]:.3f}"
                + (f", VAMPNet {entry['vampnet']['vamp2']:.3f} (val "
                   f"{entry['vampnet']['val_vamp2']:.3f}, epochs "
                   f"{[r['epochs'] for r in entry['vampnet']['runs']]})"
                   if "vampnet" in entry else "") for lag, entry in res.items()))
    for fs_scores in scores.values():
        for s in fs_scores.values():
            runs = s["linear"]["per_seed"]
            s["linear"]["summary"] = {str(k): summary([r[str(k)] for r in runs]) for k in dims}
            if vampnet:
                s["vampnet"]["summary"] = summary([r["vamp2"] for r in s["vampnet"]["per_seed"]])
                s["vampnet"]["summary_test_refit"] = summary(
                    [r["vamp2_test_refit"] for r in s["vampnet"]["per_seed"]])
            else:
                s["vampnet"] = None
    comparison: dict = {}
    if reference is not None:
        ref = scores[reference]
        for fs_name, fs_scores in scores.items():
            if fs_name == reference:
                continue
            comparison[fs_name] = {}
            for lag, s in fs_scores.items():
                c = {"linear": paired(s["linear"]["summary"][str(dims[-1])]["values"],
                                      ref[lag]["linear"]["summary"][str(dims[-1])]["values"])}
                if vampnet:
                    c["vampnet"] = paired(s["vampnet"]["summary"]["values"],
                                          ref[lag]["vampnet"]["summary"]["values"])
                comparison[fs_name][lag] = c
    report = {
        "geomfeat": __version__, "system": Path(top).stem,
        "command": command, "data": data.as_dict(),
        "lags": [lag.as_dict() for lag in lag_list],
        "settings": {"features": features, "reference": reference, "seeds": list(seeds),
                     "split": split, "n_blocks": n_blocks,
                     "block": None if block_lag is None else block_lag.as_dict(),
                     "val_fraction": val_fraction,
                     "test_fraction": test_fraction, "stride": stride, "timestep": timestep,
                     "linear_dims": dims, "vampnet": vampnet, "recipe": recipe.as_dict(),
                     "select": select, "reduce": reduce, "device": device, "workers": workers,
                     "threads": torch.get_num_threads(),
                     "standardisation": "per feature, mean and sd of the training part",
                     "linear_model": "deeptime VAMP fitted on training pieces, VAMP-2 scored "
                                     "against the test pieces' covariances",
                     "vampnet_test_score": "deeptime VAMP on the lobe outputs fitted on the "
                                           "training pieces, scored against the test pieces"},
        "linear_dims": dims,
        "upper_bounds": {"linear_k": "1 + k", "vampnet": recipe.n_states},
        "splits": [sp.as_dict() for sp in splits],
        "feature_sets": {k: v.as_dict() for k, v in sets.items()},
        "embedding": embedding,
        "scores": scores,
        "comparison": comparison,
        "host": {"platform": platform.platform(), "python": platform.python_version(),
                 "torch": torch.__version__, "cpus": os.cpu_count()},
        "timings": {"features_s": round(features_s, 1), "scoring_s": round(vampnet_s, 1),
                    "total_s": round(time.perf_counter() - t_start, 1)},
    }
    result = CompareResult(report, {"sets": outputs, "dt_ps": data.dt_ps,
                                    "lengths": data.lengths})
    if out is not None:
        files = result.save(out, name)
        log("wrote " + ", ".join(str(f) for f in files))
    return result


def _split_line(sp: Split, data: Trajectories, longest: int) -> str:
    """One log line: frames and trajectories per part, and what was left out and why."""
    total = sum(data.lengths)
    parts = ", ".join(f"{p} {sp.frames(p)} frames ({100 * sp.frames(p) / total:.0f} %) in "
                      f"{sp.trajectories(p)} trajector{'y' if sp.trajectories(p) == 1 else 'ies'}"
                      for p in ("train", "validation", "test"))
    line = f"split seed {sp.seed}: {parts}"
    if sp.left_out:
        n = sum(b - a for _, a, b in sp.left_out)
        names = ", ".join(Path(data.paths[i]).name for i, _, _ in sp.left_out[:5])
        line += (f"; left out {len(sp.left_out)} trajectories ({n} frames, "
                 f"{100 * n / total:.1f} %) shorter than the longest lag + 1 "
                 f"({longest + 1} frames): {names}"
                 + (", ..." if len(sp.left_out) > 5 else ""))
    return line
