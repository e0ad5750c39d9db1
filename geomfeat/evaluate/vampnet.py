"""VAMPNet training: deeptime's VAMPNet, one recipe for every feature set.

Training is counted in optimizer **steps**, not passes over the data: an "epoch" here is
``steps_per_epoch`` mini-batches drawn from a reshuffled stream of the training pairs, followed
by one validation score (deeptime's VAMP-2 of the whole validation part in one batch). So
patience and the learning-rate schedule mean the same number of updates whatever the size of
the data set or the batch (the old benchmark's epochs were ~14 updates on the pentapeptide;
see ``docs/benchmarks.md`` for the diagnosis).

Recipe (:class:`VAMPNetRecipe`, every field stored in the report):

- inputs standardised with the training part's mean and sd (done by the caller);
- lobe: :class:`~geomfeat.deeptime.MLPLobe` for vectors, :class:`~geomfeat.deeptime.MixerLobe`
  for token sets (or ``token_lobe="attention"``/``"mlp"``), width solved so that the lobe has
  ``budget`` trainable parameters, softmax outputs (``n_states``; VAMP-2 at most
  ``n_states``);
- Adam (``lr``), the rate halved after ``lr_patience`` epochs without a better validation
  score, early stopping after ``patience`` such epochs or ``max_epochs``;
- ``restarts`` independent initialisations; the weights of the best validation epoch of the
  best restart are kept. The test part is never touched here.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch

from ..deeptime import (
    AttentionLobe,
    MixerLobe,
    MLPLobe,
    count_parameters,
    width_for_budget,
)
from .recipe import VAMPNetRecipe

__all__ = ["VAMPNetRecipe", "make_lobe", "train_vampnet", "transform"]


def make_lobe(shape: tuple[int, ...], recipe: VAMPNetRecipe) -> tuple[torch.nn.Module, str,
                                                                         int]:
    """A lobe for frames of ``shape`` with about ``recipe.budget`` parameters.

    Returns ``(lobe, kind, width)``; ``kind`` is ``"mlp"`` for vectors and
    ``recipe.token_lobe`` for token sets ``(R, D)``.
    """
    n, depth = recipe.n_states, recipe.depth
    kind = "mlp" if len(shape) == 1 else recipe.token_lobe
    step = 1
    if kind == "mlp":
        d = int(np.prod(shape))
        def factory(w): return MLPLobe(d, n, width=w, depth=depth)
    elif kind == "mixer":
        r, d = shape
        def factory(w): return MixerLobe(r, d, n, width=w, depth=depth)
    elif kind == "attention":
        r, d = shape
        step = recipe.heads
        def factory(w): return AttentionLobe(d, n, n_tokens=r, width=w, depth=depth,
                                             heads=recipe.heads)
    else:
        raise ValueError(f"unknown token_lobe {kind!r}; choose mlp, mixer or attention")
    width = width_for_budget(factory, recipe.budget, step=step)
    return factory(width), kind, width


def _pairs(pieces: list[np.ndarray], lag: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Time-lagged pairs inside every piece (none across pieces), float32 tensors."""
    x0 = [p[:-lag] for p in pieces if len(p) > lag]
    xt = [p[lag:] for p in pieces if len(p) > lag]
    return (torch.from_numpy(np.ascontiguousarray(np.concatenate(x0), dtype=np.float32)),
            torch.from_numpy(np.ascontiguousarray(np.concatenate(xt), dtype=np.float32)))


def _train_once(shape, train, val, lag, recipe, seed, device) -> dict:
    from deeptime.decomposition.deep import VAMPNet

    torch.manual_seed(seed)
    lobe, kind, width = make_lobe(shape, recipe)
    lobe = lobe.to(device)
    vnet = VAMPNet(lobe=lobe, learning_rate=recipe.lr, device=device, epsilon=recipe.epsilon,
                   score_mode=recipe.score_mode)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        vnet.optimizer, mode="max", factor=recipe.lr_factor, patience=recipe.lr_patience,
        min_lr=recipe.min_lr)
    x0, xt = train
    pairs = torch.utils.data.TensorDataset(x0, xt)
    gen = torch.Generator().manual_seed(seed)
    sampler = torch.utils.data.RandomSampler(
        pairs, num_samples=recipe.steps_per_epoch * min(recipe.batch_size, len(pairs)),
        generator=gen)
    batches = torch.utils.data.BatchSampler(sampler, min(recipe.batch_size, len(pairs)),
                                            drop_last=False)
    loader = torch.utils.data.DataLoader(pairs, sampler=batches, batch_size=None)
    val_loader = [(val[0], val[1])]
    best, best_epoch, best_state, curve, train_curve = -np.inf, 0, None, [], []
    t0 = time.perf_counter()
    epoch = 0
    batch_scores: list[float] = []
    for epoch in range(1, recipe.max_epochs + 1):
        batch_scores.clear()
        vnet.fit(loader, n_epochs=1, validation_loader=val_loader,
                 train_score_callback=lambda _s, v: batch_scores.append(float(v)))
        score = float(vnet.validation_scores[-1][1])
        if not np.isfinite(score):
            score = -np.inf
        curve.append(round(score, 5))
        train_curve.append(round(float(np.mean(batch_scores)), 5) if batch_scores else None)
        sched.step(score)
        if score > best + recipe.min_improvement:
            best, best_epoch = score, epoch
            best_state = copy.deepcopy(lobe.state_dict())
        elif epoch - best_epoch >= recipe.patience:
            break
    if best_state is not None:
        lobe.load_state_dict(best_state)
    lobe.eval()
    return {"lobe": lobe, "kind": kind, "width": width, "params": count_parameters(lobe),
            "val_vamp2": float(best), "best_epoch": best_epoch, "epochs": epoch,
            "steps": epoch * recipe.steps_per_epoch,
            "stopped_early": epoch < recipe.max_epochs,
            "final_lr": vnet.optimizer.param_groups[0]["lr"],
            "seconds": round(time.perf_counter() - t0, 2), "val_curve": curve,
            "train_curve": train_curve}


def train_vampnet(train: list[np.ndarray], validation: list[np.ndarray], lag: int,
                  recipe: VAMPNetRecipe, *, seed: int = 0, device: str = "cpu"
                  ) -> dict[str, Any]:
    """Train ``recipe.restarts`` VAMPNets and keep the best by validation VAMP-2.

    Parameters
    ----------
    train, validation : list of ndarray
        Standardised pieces ``(T_i, ...)`` of the training and validation parts; time-lagged
        pairs are formed inside each piece only.
    lag : int
        Lag time in frames.
    recipe : VAMPNetRecipe
        The training settings.
    seed : int
        Restart ``r`` is initialised (and its batches drawn) with seed ``1000 * seed + r``.

    Returns
    -------
    dict
        ``lobe`` (the chosen ``torch.nn.Module``, eval mode), ``restart`` (its index),
        ``val_vamp2`` (its best validation score), ``runs`` (per restart: validation and
        training curves, epochs, best epoch, seconds, ...; no modules).
    """
    shape = tuple(train[0].shape[1:])
    tr = _pairs(train, lag)
    va = _pairs(validation, lag)
    runs = [_train_once(shape, tr, va, lag, recipe, 1000 * seed + r, device)
            for r in range(recipe.restarts)]
    best = int(np.argmax([r["val_vamp2"] for r in runs]))
    lobe = runs[best]["lobe"]
    for r in runs:
        del r["lobe"]
    return {"lobe": lobe, "restart": best, "val_vamp2": runs[best]["val_vamp2"],
            "kind": runs[best]["kind"], "width": runs[best]["width"],
            "params": runs[best]["params"], "runs": runs}


@torch.no_grad()
def transform(lobe: torch.nn.Module, pieces: list[np.ndarray], batch: int = 8192
              ) -> list[np.ndarray]:
    """Lobe outputs ``(T_i, n_states)`` (float64) of every piece."""
    device = next(lobe.parameters()).device
    out = []
    for p in pieces:
        x = torch.from_numpy(np.ascontiguousarray(p, dtype=np.float32))
        out.append(np.concatenate([lobe(x[i:i + batch].to(device)).cpu().numpy()
                                   for i in range(0, len(x), batch)]).astype(np.float64))
    return out
