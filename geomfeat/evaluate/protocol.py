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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._version import __version__
from ..errors import GeomfeatError
from .features import (
    DEFAULT_FEATURES,
    FeatureSet,
    Trajectories,
    build_feature_sets,
    load_trajectories,
)
from .lags import Lag, parse_lags
from .linear import vamp_fit, vamp_scores
from .recipe import VAMPNetRecipe
from .splits import Split, make_split, pieces_of, standardizer
from .stats import paired, summary
from .vampnet import train_vampnets, transform
from .workers import auto_workers, available_cpus, score_units

__all__ = ["DEFAULT_FEATURES", "CompareResult", "compare", "score_feature_set", "score_splits"]

def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class CompareResult:
    """Scores of a comparison; ``report`` is the JSON-ready dict (every setting and score).

    ``outputs`` (for plots, not in the JSON): per feature set, the seed-0 projections used by
    the free-energy and implied-timescale plots.
    """

    report: dict
    outputs: dict = field(default_factory=dict, repr=False)

    @property
    def feature_sets(self) -> list[str]:
        return list(self.report["feature_sets"])

    def score(self, feature_set: str, lag: int | str, model: str = "vampnet") -> dict:
        """Test VAMP-2 summary (mean, sd, n, values) of ``model`` ("vampnet" or "linear",
        the largest k) at ``lag`` (frames or its text)."""
        key = self._lag_key(lag)
        entry = self.report["scores"][feature_set][key]
        if model == "vampnet":
            return entry["vampnet"]["summary"]
        return entry["linear"]["summary"][str(max(self.report["linear_dims"]))]

    def _lag_key(self, lag: int | str) -> str:
        for d in self.report["lags"]:
            if str(lag) in (d["text"], str(d["frames"])):
                return str(d["frames"])
        raise KeyError(f"lag {lag!r} not in {[d['text'] for d in self.report['lags']]}")

    def markdown(self) -> str:
        from .report import markdown

        return markdown(self.report)

    def save(self, out: str | os.PathLike, name: str = "compare") -> list[Path]:
        """Write ``NAME.json``, ``NAME.md`` and the plots into folder ``out``."""
        from .report import write_report

        return write_report(self, Path(out), name)


def score_feature_set(fs: FeatureSet, split: Split, lags: Sequence[int], *, dims: Sequence[int],
                      recipe: VAMPNetRecipe | None, seed: int, device: str = "cpu"
                      ) -> tuple[dict, dict]:
    """Linear and VAMPNet test scores of one feature set on one split, at every lag.

    Returns ``(scores, outputs)``: ``scores[str(lag)]`` holds ``linear`` ({k: VAMP-2}) and
    ``vampnet`` (test VAMP-2, its refit variant, validation score, runs); ``outputs`` the
    chosen lobes' outputs on all frames (for plots).
    """
    return score_splits(fs, [split], lags, dims=dims, recipe=recipe, seeds=[seed],
                        device=device)[0]


def score_splits(fs: FeatureSet, splits: Sequence[Split], lags: Sequence[int], *,
                 dims: Sequence[int], recipe: VAMPNetRecipe | None,
                 seeds: Sequence[int] | None = None, device: str = "cpu"
                 ) -> list[tuple[dict, dict]]:
    """:func:`score_feature_set` on several splits, its VAMPNets trained as one batched model.

    Every VAMPNet of the feature set (``len(splits) × len(lags) × recipe.restarts``) is trained
    in one :func:`~geomfeat.evaluate.vampnet.train_vampnets` call; each is initialised and
    fed as if trained alone (seed ``seeds[i]``, default ``splits[i].seed``). Returns one
    ``(scores, outputs)`` per split, in order.
    """
    seeds = [sp.seed for sp in splits] if seeds is None else list(seeds)
    prepared = []
    for sp in splits:
        train_raw = pieces_of(fs.data, sp.train)
        mean, sd = standardizer(train_raw)
        z = [((x - mean) / sd).astype(np.float32) for x in fs.data]
        prepared.append((z, *(pieces_of(z, sp.part(p)) for p in ("train", "validation",
                                                                   "test"))))
    nets = iter(train_vampnets([(tr, va, lag, seed)
                                for (_, tr, va, _), seed in zip(prepared, seeds, strict=True)
                                for lag in lags], recipe, device=device)
                if recipe is not None else [])
    results = []
    for z, train, _, test in prepared:
        scores: dict = {}
        outputs: dict = {}
        for lag in lags:
            lin = vamp_fit(train, lag)
            entry: dict = {"linear": vamp_scores(train, test, lag, dims, model=lin)}
            outputs[str(lag)] = {"linear": [lin.transform(x.reshape(len(x), -1)
                                                          .astype(np.float64))[:, :max(dims)]
                                            for x in z]}
            if recipe is not None:
                import torch
                from deeptime.decomposition.deep import vamp_score

                net = next(nets)
                chi_train, chi_test = transform(net["lobe"], train), transform(net["lobe"], test)
                vamp2 = float(vamp_fit(chi_train, lag).score(
                    r=2, test_model=vamp_fit(chi_test, lag)))
                x0 = np.concatenate([c[:-lag] for c in chi_test if len(c) > lag])
                xt = np.concatenate([c[lag:] for c in chi_test if len(c) > lag])
                refit = float(vamp_score(torch.from_numpy(x0), torch.from_numpy(xt),
                                         method="VAMP2", epsilon=recipe.epsilon,
                                         mode=recipe.score_mode))
                entry["vampnet"] = {"vamp2": vamp2, "vamp2_test_refit": refit,
                                    "val_vamp2": net["val_vamp2"], "restart": net["restart"],
                                    "kind": net["kind"], "width": net["width"],
                                    "params": net["params"], "runs": net["runs"]}
                outputs[str(lag)]["vampnet"] = transform(net["lobe"], z)
            scores[str(lag)] = entry
        results.append((scores, outputs))
    return results


def compare(top: str | os.PathLike, trajs: Sequence[str | os.PathLike] | str | os.PathLike,
            lags: Sequence[str | int], *, features: Sequence[str] = DEFAULT_FEATURES,
            reference: str | None = "distances", seeds: Sequence[int] = (0, 1, 2),
            split: str = "block", n_blocks: int = 10, val_fraction: float = 0.2,
            test_fraction: float = 0.2, stride: int = 1, timestep: float | None = None,
            n_linear: int | None = None, vampnet: bool = True,
            recipe: VAMPNetRecipe | None = None, select: str = "heavy", reduce: str = "sum",
            cache: str | os.PathLike | None = None, device: str = "cpu",
            threads: int | None = None, workers: int | None = 1,
            out: str | os.PathLike | None = None,
            name: str = "compare", log: Callable[[str], None] | None = _log,
            command: str | None = None) -> CompareResult:
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
        One split (and VAMPNet initialisation) per seed.
    split : {"block", "trajectory"}
        Deal contiguous blocks (``n_blocks`` per trajectory) or whole trajectories.
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
        Folder of cached encoder readouts (default ``$GEOMFEAT_EVAL_CACHE`` or
        ``~/.cache/geomfeat/evaluate``).
    device : str
        Torch device for embedding and training.
    threads : int, optional
        Torch CPU threads (one is fastest for the small lobes on a busy machine); shared out
        among the worker processes.
    workers : int or None
        Processes that score the feature sets (:mod:`~geomfeat.evaluate.workers`); default 1
        (this process); None: one per CPU for comparisons with VAMPNets on the CPU large
        enough to pay their start (:func:`~geomfeat.evaluate.workers.auto_workers`).
    out : path, optional
        Write the report (JSON, markdown, plots) into this folder as ``name.*``.

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
    if out is not None and not Path(out).parent.is_dir():
        raise GeomfeatError(f"output folder's parent does not exist: {Path(out).parent}")
    data: Trajectories = load_trajectories(top, trajs, stride=stride, timestep=timestep)
    lag_list: list[Lag] = parse_lags(lags, data.dt_ps)
    log(f"{len(data.trajs)} trajectories, {sum(data.lengths)} frames, "
        f"{data.dt_ps if data.dt_ps is not None else 'unknown'} ps per frame; lags "
        + ", ".join(f"{lag.text} = {int(lag)} frames" for lag in lag_list))
    splits = [make_split(data.lengths, by=split, n_blocks=n_blocks, val_fraction=val_fraction,
                         test_fraction=test_fraction, seed=s, min_length=max(lag_list) + 1)
              for s in seeds]
    t0 = time.perf_counter()
    sets, embedding = build_feature_sets(features, data, select=select, reduce=reduce,
                                         cache=cache, device=device, log=log)
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
                        threads=max(1, (threads or available_cpus()) // workers), log=log)
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
                     "split": split, "n_blocks": n_blocks, "val_fraction": val_fraction,
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
