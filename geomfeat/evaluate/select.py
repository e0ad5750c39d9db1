"""Forward selection of feature families by validation VAMP-2; the test part scores once.

Parts. One **test** part is dealt once (:func:`~geomfeat.evaluate.splits.make_split` with
``test_seed``) and kept for every seed; for each seed the remaining pieces are re-dealt into
training and validation (:func:`inner_splits`). So the seeds measure how much a choice depends
on the training data, and no frame that any seed trains or validates on is a test frame.

Per seed and family, the family is reduced on the training part alone
(:func:`~geomfeat.evaluate.reduce.fit_reduction`: standardisation, PCA; the dimension chosen
by VAMP-2 on a quarter of the training pieces held out from a fit on the rest,
:func:`training_halves`; then the PCA refitted on the whole training part at that dimension).
So the validation part is not used twice: it only scores sets. A *set* of families is the
concatenation of their reduced blocks; its score is the **validation** VAMP-2 of linear VAMP
fitted on the training part (output dimension ``k``).

Forward selection (:class:`Selector`):

1. the best single family (mean validation VAMP-2 over seeds) starts the set;
2. each step tries every remaining family added to the set and takes the best; it is kept when
   its per-seed improvements ``d_s = val(set + family, s) − val(set, s)`` have
   ``mean(d) > 0`` and ``mean(d) > noise × sd(d)`` (sd over seeds, ``ddof=1``; ``noise = 1``:
   the improvement exceeds its own seed-to-seed spread), else selection stops;
3. it stops also after ``max_set`` families, or when a set's reduced dimension would exceed
   the training frames / :data:`~geomfeat.evaluate.reduce.FRAMES_PER_DIM`.

The runner-up is the best-scoring other set evaluated that does not contain the choice (the
choice plus a family that did not help is already in the steps). Optionally the finalists (the
choice and the runner-up) are trained as VAMPNets and the choice moves to the runner-up only
when its validation VAMPNet score beats the choice's by the same rule. Only then is the test
part read: linear test VAMP-2 of the chosen set and of every single family, per seed (paired).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .recipe import VAMPNetRecipe
from .reduce import (
    FRAMES_PER_DIM,
    Reduction,
    fit_pca,
    fit_reduction,
    lagged_covariances,
    sub_covariances,
    vamp2_from_covariances,
)
from .splits import Split, pieces_of
from .stats import paired, summary

__all__ = ["Selector", "final_features", "improves", "inner_splits", "training_halves"]


def inner_splits(outer: Split, seeds: Sequence[int], val_fraction: float = 0.2) -> list[Split]:
    """Re-deal ``outer``'s training and validation pieces per seed; its test part stays.

    ``val_fraction`` is the validation share of **all** pieces, as in ``outer``; the seed
    fixes the deal.
    """
    pool = sorted(outer.train + outer.validation)
    n_all = len(pool) + len(outer.test)
    n_val = int(np.clip(round(val_fraction * n_all), 1, len(pool) - 1))
    out = []
    for seed in seeds:
        order = np.random.default_rng(seed).permutation(len(pool))
        val = set(order[:n_val].tolist())
        out.append(Split(by=outer.by, seed=int(seed),
                         train=[p for i, p in enumerate(pool) if i not in val],
                         validation=[p for i, p in enumerate(pool) if i in val],
                         test=list(outer.test),
                         settings={**outer.settings, "test_seed": outer.seed}))
    return out


def training_halves(train: Sequence[tuple[int, int, int]], seed: int
                    ) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    """Split training pieces into those that fit a family's PCA and VAMP and a quarter (at
    least one piece) that chooses its dimension, so the validation part only scores sets.

    With a single training piece both are that piece.
    """
    if len(train) < 2:
        return list(train), list(train)
    n = max(1, round(len(train) / 4))
    pick = set(np.random.default_rng([int(seed), 1]).permutation(len(train))[:n].tolist())
    return ([p for i, p in enumerate(train) if i not in pick],
            [p for i, p in enumerate(train) if i in pick])


def improves(new: Sequence[float], old: Sequence[float], noise: float = 1.0) -> dict:
    """Whether ``new`` beats ``old`` beyond seed noise: paired statistics and ``accepted``."""
    d = np.asarray(new, float) - np.asarray(old, float)
    sd = float(d.std(ddof=1)) if len(d) > 1 else 0.0
    return {"diff": summary(d), "threshold": noise * sd,
            "accepted": bool(d.mean() > 0 and d.mean() > noise * sd)}


class Selector:
    """Reduced blocks of every family on every split, and the scores of sets of them.

    Parameters
    ----------
    data : dict
        ``{family spec: [per-trajectory float arrays (T_i, ...)]}``.
    splits : list of Split
        One per seed, all with the same test part (:func:`inner_splits`).
    lag : int
        Lag time in frames.
    k : int
        VAMP-2 output dimension.
    max_dim : int, optional
        Largest PCA dimension tried per family.
    log : callable
        Progress messages.
    """

    def __init__(self, data: dict[str, list[np.ndarray]], splits: Sequence[Split], lag: int, *,
                 k: int = 4, max_dim: int | None = None,
                 log: Callable[[str], None] = lambda s: None) -> None:
        import time

        self.names, self.splits, self.lag, self.k = list(data), list(splits), int(lag), k
        self.reductions: dict[str, list[Reduction]] = {}
        self.blocks: dict[str, list[list[np.ndarray]]] = {}
        self.seconds: dict[str, float] = {}
        for name, arrays in data.items():
            t0 = time.perf_counter()
            reds, blocks = [], []
            for sp in self.splits:
                fit, choose = training_halves(sp.train, sp.seed)
                red = fit_reduction(pieces_of(arrays, fit), pieces_of(arrays, choose), lag, k=k,
                                    max_dim=max_dim, seed=sp.seed)
                full = fit_pca(pieces_of(arrays, sp.train), red.dim, seed=sp.seed)
                full.val_scores = red.val_scores
                red = full
                reds.append(red)
                blocks.append([red.transform(x) for x in arrays])
            self.reductions[name], self.blocks[name] = reds, blocks
            self.seconds[name] = time.perf_counter() - t0
            log(f"{name}: reduced to {[r.dim for r in reds]} dimensions (per seed) "
                f"[{self.seconds[name]:.1f} s]")
        self._val: dict[tuple[str, ...], list[float]] = {}
        self._cov: dict[tuple[str, int], object] = {}

    def _covariances(self, part: str, s: int):
        """Covariances of all families' blocks together on one part of split ``s`` (cached);
        a set's covariances are sub-blocks of these."""
        if (part, s) not in self._cov:
            self._cov[part, s] = lagged_covariances(
                pieces_of(self._set(self.names, s), self.splits[s].part(part)), self.lag)
        return self._cov[part, s]

    def _index(self, names: Sequence[str], s: int) -> np.ndarray:
        offsets = np.cumsum([0] + [self.reductions[n][s].dim for n in self.names])
        return np.concatenate([np.arange(offsets[i], offsets[i + 1])
                               for i in (self.names.index(n) for n in names)])

    def _score(self, names: Sequence[str], part: str) -> list[float]:
        return [vamp2_from_covariances(sub_covariances(self._covariances("train", s), idx),
                                       sub_covariances(self._covariances(part, s), idx), self.k)
                for s in range(len(self.splits)) for idx in [self._index(names, s)]]

    def dims(self, names: Sequence[str]) -> list[int]:
        """Reduced dimension of a set, per seed."""
        return [sum(self.reductions[n][s].dim for n in names) for s in range(len(self.splits))]

    def _set(self, names: Sequence[str], s: int) -> list[np.ndarray]:
        return [np.concatenate(parts, axis=1)
                for parts in zip(*(self.blocks[n][s] for n in names), strict=True)]

    def val_scores(self, names: Sequence[str]) -> list[float]:
        """Validation VAMP-2 of a set, per seed (cached)."""
        key = tuple(names)
        if key not in self._val:
            self._val[key] = self._score(names, "validation")
        return self._val[key]

    def test_scores(self, names: Sequence[str]) -> list[float]:
        """Test VAMP-2 of a set, per seed: the only method that reads the test part."""
        return self._score(names, "test")

    def forward(self, *, noise: float = 1.0, max_set: int = 4) -> dict:
        """Forward selection (module docstring); returns the JSON-ready record."""
        max_dim = min(sp.frames("train") for sp in self.splits) // FRAMES_PER_DIM
        chosen: list[str] = []
        current: list[float] | None = None
        steps = []
        while len(chosen) < max_set:
            cands = [n for n in self.names if n not in chosen  # a single family always fits
                     and (not chosen or max(self.dims([*chosen, n])) <= max(max_dim, 1))]
            if not cands:
                break
            trial = {n: self.val_scores([*chosen, n]) for n in cands}
            best = max(cands, key=lambda n: (np.mean(trial[n]), -cands.index(n)))
            step = {"base": list(chosen),
                    "candidates": {"+".join([*chosen, n]): summary(v) for n, v in trial.items()},
                    "best": best}
            if current is None:
                step["accepted"] = True
            else:
                step.update(improves(trial[best], current, noise))
            steps.append(step)
            if not step["accepted"]:
                break
            chosen.append(best)
            current = trial[best]
        evaluated = {"+".join(k): summary(v) for k, v in self._val.items()}
        name = "+".join(chosen)
        # a genuine alternative: not the choice plus more families (those are in the steps)
        others = [key for key in self._val if list(key) != chosen
                  and not set(chosen) <= set(key)] or [
            key for key in self._val if list(key) != chosen]
        runner = "+".join(max(others, key=lambda key: np.mean(self._val[key]))) \
            if others else None
        return {"chosen": chosen, "name": name, "runner_up": runner, "steps": steps,
                "validation": evaluated, "noise": noise, "max_set": max_set,
                "max_reduced_dims": max_dim}

    def vampnet_stage(self, record: dict, recipe: VAMPNetRecipe, *, noise: float = 1.0,
                      device: str = "cpu") -> dict:
        """Train VAMPNets on the finalists (choice and runner-up) and keep the better one.

        The runner-up replaces the choice only when its validation VAMPNet score beats the
        choice's by the rule of :func:`improves`. Returns ``{"finalists", "val", "switch"}``
        and updates ``record["chosen"]``/``["name"]``.
        """
        from .vampnet import train_vampnet

        finalists = [record["name"]] + ([record["runner_up"]] if record["runner_up"] else [])
        val = {}
        for f in finalists:
            names = f.split("+")
            val[f] = [train_vampnet([p.astype(np.float32) for p in pieces_of(x, sp.train)],
                                    [p.astype(np.float32) for p in pieces_of(x, sp.validation)],
                                    self.lag, recipe, seed=sp.seed, device=device)["val_vamp2"]
                      for s, sp in enumerate(self.splits) for x in [self._set(names, s)]]
        out = {"finalists": finalists, "val": {f: summary(v) for f, v in val.items()},
               "switch": None}
        if len(finalists) > 1:
            out["switch"] = improves(val[finalists[1]], val[finalists[0]], noise)
            if out["switch"]["accepted"]:
                record["chosen"], record["name"] = finalists[1].split("+"), finalists[1]
        return out

    def test_stage(self, record: dict) -> dict:
        """Test VAMP-2 of the chosen set and of every single family (read once, per seed)."""
        tests = {n: self.test_scores([n]) for n in self.names}
        if len(record["chosen"]) > 1:
            tests[record["name"]] = self.test_scores(record["chosen"])
        best_single = max(self.names, key=lambda n: np.mean(tests[n]))
        return {"scores": {n: summary(v) for n, v in tests.items()},
                "best_single": best_single,
                "chosen_vs_best_single": paired(tests[record["name"]], tests[best_single])}

    def final_dims(self, names: Sequence[str]) -> dict[str, int]:
        """Per family, the median over seeds of the chosen dimension."""
        return {n: int(np.median([r.dim for r in self.reductions[n]])) for n in names}


def final_features(data: dict[str, list[np.ndarray]], dims: dict[str, int], seed: int = 0
                       ) -> tuple[list[np.ndarray], dict]:
    """The chosen set's features for a final model: each family standardised and reduced to
    its dimension by PCA fitted on **all** frames, whitened, concatenated (float32).

    Returns ``(arrays per trajectory (T_i, sum of dims), {family: dimension kept})``.
    """
    from .reduce import fit_pca

    blocks, kept = [], {}
    for name, m in dims.items():
        red = fit_pca(data[name], m, seed)
        kept[name] = red.dim
        blocks.append([red.transform(x) for x in data[name]])
    arrays = [np.concatenate(parts, axis=1).astype(np.float32) for parts in zip(*blocks,
                                                                                  strict=True)]
    return arrays, kept

