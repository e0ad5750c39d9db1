"""Test scores of one feature set on the splits of a comparison, at every lag.

For each split the features are standardised with its training part's mean and sd; **linear
VAMP** is fitted on the training part and scored on the test part (``k = 1 … max(dims)``)
first, for every split and lag; then every **VAMPNet** of the feature set (splits × lags ×
restarts) is trained as one batched model (:func:`~geomfeat.evaluate.vampnet.train_vampnets`),
with one progress bar for that fit, and the chosen lobes' outputs are scored on the test part
by the same estimator as the linear models. See :mod:`geomfeat.evaluate.protocol`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from ..errors import GeomfeatError
from .features import FeatureSet
from .linear import vamp_fit, vamp_scores
from .recipe import VAMPNetRecipe
from .splits import Split, pieces_of, standardizer
from .vampnet import train_vampnets, transform

__all__ = ["score_feature_set", "score_splits"]


@contextmanager
def _naming(fs: FeatureSet, split: Split, lag: int, seed: int, what: str) -> Iterator[None]:
    """deeptime's ZeroRankError as one GeomfeatError naming the feature set, lag and seed."""
    from deeptime.numeric import ZeroRankError

    try:
        yield
    except ZeroRankError:
        pairs = sum(max(0, b - a - lag) for _, a, b in split.train)
        raise GeomfeatError(f"feature set {fs.name}, lag {lag} frames, seed {seed}: VAMP finds "
                            f"no direction to keep in {what} on the training part ({pairs} "
                            f"time-lagged pairs at lag {lag} frames): constant there, or too "
                            "few pairs (use a shorter lag or more data)") from None


def score_feature_set(fs: FeatureSet, split: Split, lags: Sequence[int], *, dims: Sequence[int],
                      recipe: VAMPNetRecipe | None, seed: int, device: str = "cpu",
                      progress: bool = False) -> tuple[dict, dict]:
    """Linear and VAMPNet test scores of one feature set on one split, at every lag.

    Returns ``(scores, outputs)``: ``scores[str(lag)]`` holds ``linear`` ({k: VAMP-2}) and
    ``vampnet`` (test VAMP-2, its refit variant, validation score, runs); ``outputs`` the
    chosen lobes' outputs on all frames (for plots). ``progress``: a progress bar (epochs,
    networks still training, best validation VAMP-2) for the VAMPNet fit.

    Raises
    ------
    GeomfeatError
        When deeptime finds no rank to keep (features constant on the training part), naming
        the feature set, lag and seed.
    """
    return score_splits(fs, [split], lags, dims=dims, recipe=recipe, seeds=[seed],
                        device=device, progress=progress)[0]


def _fit_bar(fs: FeatureSet, lags: Sequence[int], seeds: Sequence[int], networks: int,
             recipe: VAMPNetRecipe, progress: bool):
    """A tqdm bar over the network-epochs of one (batched) VAMPNet fit, and its callback."""
    from tqdm.auto import tqdm

    def listed(word: str, values: Sequence[int]) -> str:
        return f"{word}{'s' if len(values) > 1 else ''} {', '.join(map(str, values))}"

    bar = tqdm(total=networks * recipe.max_epochs, unit="epoch", leave=False,
               desc=f"VAMPNet {fs.name} {listed('lag', lags)} {listed('seed', seeds)}",
               disable=not progress, dynamic_ncols=True)

    def on_epoch(done: int, training: int, best: float) -> None:
        bar.n = done  # a network that stops early skips the rest of its epochs
        bar.set_postfix(training=training, best_val=f"{best:.3f}", refresh=False)
        bar.refresh()

    return bar, on_epoch


def score_splits(fs: FeatureSet, splits: Sequence[Split], lags: Sequence[int], *,
                 dims: Sequence[int], recipe: VAMPNetRecipe | None,
                 seeds: Sequence[int] | None = None, device: str = "cpu",
                 progress: bool = False) -> list[tuple[dict, dict]]:
    """:func:`score_feature_set` on several splits, its VAMPNets trained as one batched model.

    Every VAMPNet of the feature set (``len(splits) × len(lags) × recipe.restarts``) is trained
    in one :func:`~geomfeat.evaluate.vampnet.train_vampnets` call, after the linear models of
    every split and lag; each is initialised and fed as if trained alone (seed ``seeds[i]``,
    default ``splits[i].seed``). Returns one ``(scores, outputs)`` per split, in order.
    ``progress``: one bar for the VAMPNet fit.
    """
    seeds = [sp.seed for sp in splits] if seeds is None else list(seeds)
    prepared, results = [], []
    for sp, seed in zip(splits, seeds, strict=True):
        mean, sd = standardizer(pieces_of(fs.data, sp.train))
        z = [((x - mean) / sd).astype(np.float32) for x in fs.data]
        train, val, test = (pieces_of(z, sp.part(p)) for p in ("train", "validation", "test"))
        scores: dict = {}
        outputs: dict = {}
        for lag in lags:  # linear VAMP first: a rank-deficient set fails before any training
            with _naming(fs, sp, lag, seed, "its features"):
                lin = vamp_fit(train, lag)
                scores[str(lag)] = {"linear": vamp_scores(train, test, lag, dims, model=lin)}
            outputs[str(lag)] = {"linear": [lin.transform(x.reshape(len(x), -1)
                                                          .astype(np.float64))[:, :max(dims)]
                                            for x in z]}
        prepared.append((z, train, val, test))
        results.append((scores, outputs))
    if recipe is None:
        return results
    import torch
    from deeptime.decomposition.deep import vamp_score

    tasks = [(tr, va, lag, seed) for (_, tr, va, _), seed in zip(prepared, seeds, strict=True)
             for lag in lags]
    bar, on_epoch = _fit_bar(fs, lags, seeds, len(tasks) * recipe.restarts, recipe, progress)
    with bar:
        nets = iter(train_vampnets(tasks, recipe, device=device, on_epoch=on_epoch))
    for (z, train, _, test), (scores, outputs), sp, seed in zip(prepared, results, splits, seeds,
                                                                strict=True):
        for lag in lags:
            net = next(nets)
            chi_train, chi_test = transform(net["lobe"], train), transform(net["lobe"], test)
            with _naming(fs, sp, lag, seed, "the VAMPNet's outputs"):
                vamp2 = float(vamp_fit(chi_train, lag).score(
                    r=2, test_model=vamp_fit(chi_test, lag)))
            x0 = np.concatenate([c[:-lag] for c in chi_test if len(c) > lag])
            xt = np.concatenate([c[lag:] for c in chi_test if len(c) > lag])
            refit = float(vamp_score(torch.from_numpy(x0), torch.from_numpy(xt), method="VAMP2",
                                     epsilon=recipe.epsilon, mode=recipe.score_mode))
            scores[str(lag)]["vampnet"] = {
                "vamp2": vamp2, "vamp2_test_refit": refit, "val_vamp2": net["val_vamp2"],
                "restart": net["restart"], "kind": net["kind"], "width": net["width"],
                "params": net["params"], "runs": net["runs"]}
            outputs[str(lag)]["vampnet"] = transform(net["lobe"], z)
    return results
