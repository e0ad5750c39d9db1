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

:func:`train_vampnets` trains the restarts of many (split, lag) tasks as one batched model
(:mod:`geomfeat.evaluate.batched`): the same networks as one at a time, faster.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..deeptime import count_parameters
from .lobes import make_lobe
from .recipe import VAMPNetRecipe

__all__ = ["VAMPNetRecipe", "fit_with_early_stopping", "make_lobe", "pairs_of",
           "train_vampnet", "train_vampnets", "transform", "validation_score"]


def pairs_of(pieces: list[np.ndarray], lag: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Time-lagged pairs ``(x_t, x_{t+lag})`` inside every piece (none across pieces).

    Works for feature pieces and for the ``(T, 1)`` frame-index pieces of
    :meth:`geomfeat.evaluate.finetune.LayerCache.frame_indices` alike; two float32 tensors.

    Raises
    ------
    ValueError
        If no piece is longer than ``lag``.
    """
    x0 = [p[:-lag] for p in pieces if len(p) > lag]
    xt = [p[lag:] for p in pieces if len(p) > lag]
    if not x0:
        raise ValueError(f"no piece is longer than the lag time {lag}")
    return (torch.from_numpy(np.ascontiguousarray(np.concatenate(x0), dtype=np.float32)),
            torch.from_numpy(np.ascontiguousarray(np.concatenate(xt), dtype=np.float32)))


@torch.no_grad()
def validation_score(vnet: Any, module: torch.nn.Module,
                     pairs: tuple[torch.Tensor, torch.Tensor], *,
                     batch_size: int | None = None) -> float:
    """``vnet``'s score (its method, mode and epsilon) of ``module``'s outputs on ``pairs``.

    All pairs enter one covariance estimate, as in deeptime's ``VAMPNet.validate``; the outputs
    are computed in batches of ``batch_size`` frames (None: all at once) so that a module that
    runs an encoder (fine-tuning) fits in memory. Non-finite scores are returned as -inf.
    """
    from deeptime.decomposition.deep import vamp_score

    was_training = module.training
    module.eval()
    device = next(module.parameters()).device
    step = batch_size or max(1, len(pairs[0]))
    out = [torch.cat([module(x[i:i + step].to(device)) for i in range(0, len(x), step)])
           for x in pairs]
    module.train(was_training)
    score = float(vamp_score(out[0], out[1], method=vnet.score_method, mode=vnet.score_mode,
                             epsilon=vnet.epsilon))
    return score if np.isfinite(score) else -np.inf


def fit_with_early_stopping(vnet: Any, module: torch.nn.Module,
                            train: tuple[torch.Tensor, torch.Tensor],
                            validation: tuple[torch.Tensor, torch.Tensor], *,
                            batch_size: int = 256, steps_per_epoch: int = 50,
                            max_epochs: int = 30, patience: int = 8, lr_patience: int = 4,
                            lr_factor: float = 0.5, min_lr: float = 1e-5,
                            min_improvement: float = 1e-4, seed: int = 0,
                            eval_batch_size: int | None = None,
                            on_epoch: Callable[[int, float], None] | None = None
                            ) -> dict[str, Any]:
    """Train a deeptime ``VAMPNet``, keeping the weights of its best validation epoch.

    An epoch is ``steps_per_epoch`` mini-batches of ``batch_size`` pairs drawn from the
    reshuffled training pairs (seeded by ``seed``), then one validation score
    (:func:`validation_score`). Every learning rate of the optimizer is multiplied by
    ``lr_factor`` (down to ``min_lr``) after ``lr_patience`` epochs without a better score
    (by more than ``min_improvement``); training stops after ``patience`` such epochs or
    ``max_epochs``. ``module`` (the lobe; for fine-tuning, with its trainable encoder layers)
    gets the weights of the best epoch back and is left in eval mode. ``on_epoch(epoch,
    validation_score)`` is called after every epoch (progress bars).

    Returns
    -------
    dict
        ``val_vamp2`` (best), ``best_epoch``, ``epochs``, ``steps``, ``stopped_early``,
        ``final_lr``, ``seconds``, ``seconds_per_step`` (training only), ``val_curve`` and
        ``train_curve`` (mean training-batch score per epoch).
    """
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        vnet.optimizer, mode="max", factor=lr_factor, patience=lr_patience, min_lr=min_lr)
    pairs = torch.utils.data.TensorDataset(*train)
    size = min(batch_size, len(pairs))
    sampler = torch.utils.data.RandomSampler(pairs, num_samples=steps_per_epoch * size,
                                             generator=torch.Generator().manual_seed(seed))
    loader = torch.utils.data.DataLoader(
        pairs, sampler=torch.utils.data.BatchSampler(sampler, size, drop_last=False),
        batch_size=None)
    best, best_epoch, best_state, curve, train_curve = -np.inf, 0, None, [], []
    t0, train_seconds, epoch = time.perf_counter(), 0.0, 0
    batch_scores: list[float] = []
    for epoch in range(1, max_epochs + 1):
        batch_scores.clear()
        t1 = time.perf_counter()
        vnet.fit(loader, n_epochs=1,
                 train_score_callback=lambda _s, v: batch_scores.append(float(v)))
        train_seconds += time.perf_counter() - t1
        score = validation_score(vnet, module, validation, batch_size=eval_batch_size)
        curve.append(round(score, 5))
        train_curve.append(round(float(np.mean(batch_scores)), 5) if batch_scores else None)
        sched.step(score)
        if on_epoch is not None:
            on_epoch(epoch, score)
        if score > best + min_improvement:
            best, best_epoch = score, epoch
            best_state = copy.deepcopy(module.state_dict())
        elif epoch - best_epoch >= patience:
            break
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return {"val_vamp2": float(best), "best_epoch": best_epoch, "epochs": epoch,
            "steps": epoch * steps_per_epoch, "stopped_early": epoch < max_epochs,
            "final_lr": vnet.optimizer.param_groups[0]["lr"],
            "seconds": round(time.perf_counter() - t0, 2),
            "seconds_per_step": train_seconds / max(1, epoch * steps_per_epoch),
            "val_curve": curve, "train_curve": train_curve}


def _train_once(shape, train, val, recipe, seed, device, on_epoch=None) -> dict:
    from deeptime.decomposition.deep import VAMPNet

    torch.manual_seed(seed)
    lobe, kind, width = make_lobe(shape, recipe)
    lobe = lobe.to(device)
    vnet = VAMPNet(lobe=lobe, learning_rate=recipe.lr, device=device, epsilon=recipe.epsilon,
                   score_mode=recipe.score_mode)
    run = fit_with_early_stopping(
        vnet, lobe, train, val, batch_size=recipe.batch_size,
        steps_per_epoch=recipe.steps_per_epoch, max_epochs=recipe.max_epochs,
        patience=recipe.patience, lr_patience=recipe.lr_patience, lr_factor=recipe.lr_factor,
        min_lr=recipe.min_lr, min_improvement=recipe.min_improvement, seed=seed,
        on_epoch=on_epoch)
    return {"lobe": lobe, "kind": kind, "width": width, "params": count_parameters(lobe),
            **run}


def train_vampnet(train: list[np.ndarray], validation: list[np.ndarray], lag: int,
                  recipe: VAMPNetRecipe, *, seed: int = 0, device: str = "cpu",
                  batched: bool = True,
                  on_epoch: Callable[[int, int, float], None] | None = None
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
    batched : bool
        Train the restarts as one batched model (:mod:`geomfeat.evaluate.batched`; the same
        networks up to float32 round-off, faster) or one after the other.
    on_epoch : callable, optional
        Progress (bars): as for :func:`train_vampnets`.

    Returns
    -------
    dict
        ``lobe`` (the chosen ``torch.nn.Module``, eval mode), ``restart`` (its index),
        ``val_vamp2`` (its best validation score), ``runs`` (per restart: validation and
        training curves, epochs, best epoch, seconds, ...; no modules).
    """
    return train_vampnets([(train, validation, lag, seed)], recipe, device=device,
                          batched=batched, on_epoch=on_epoch)[0]


def train_vampnets(tasks: list[tuple[list[np.ndarray], list[np.ndarray], int, int]],
                   recipe: VAMPNetRecipe, *, device: str = "cpu", batched: bool = True,
                   on_epoch: Callable[[int, int, float], None] | None = None
                   ) -> list[dict[str, Any]]:
    """:func:`train_vampnet` for several ``(train, validation, lag, seed)`` tasks at once.

    With ``batched`` (and a recipe :func:`~geomfeat.evaluate.batched.supports_batching`
    accepts), every restart of every task whose frames have one shape is trained in one batched
    model (e.g. all seeds, lags and restarts of one feature set); the results are those of
    separate training up to float32 round-off. Returns one :func:`train_vampnet` result per
    task, in order.

    ``on_epoch(done, training, best)`` is called after every epoch (progress bars): ``done``
    counts network-epochs out of ``networks × recipe.max_epochs`` (a network that stopped
    early counts as finished), ``training`` is the number of networks still training and
    ``best`` the best validation VAMP-2 so far of any network.
    """
    from .batched import BatchedJob, supports_batching, train_batched

    shapes = [tuple(t[0][0].shape[1:]) for t in tasks]
    pairs = [(pairs_of(tr, lag), pairs_of(va, lag)) for tr, va, lag, _ in tasks]
    seeds = [[1000 * seed + r for r in range(recipe.restarts)] for *_, seed in tasks]
    runs: list[list[dict]] = [[{} for _ in s] for s in seeds]
    total = sum(len(s) for s in seeds)
    offset, best = 0, [-np.inf]  # network-epochs of the fits before this one; best so far

    def report(done: int, training: int, size: int, score: float) -> None:
        """``done`` network-epochs and ``training`` networks of a fit of ``size``."""
        best[0] = max(best[0], score)
        if on_epoch is not None:
            on_epoch(offset * recipe.max_epochs + done, training + total - offset - size,
                     best[0])

    if batched and supports_batching(recipe):
        groups: dict[tuple, list[tuple[int, int]]] = {}
        for i, (shape, (tr, _)) in enumerate(zip(shapes, pairs, strict=True)):
            key = (shape, min(recipe.batch_size, len(tr[0])))
            groups.setdefault(key, []).extend((i, r) for r in range(recipe.restarts))
        for (shape, _), members in groups.items():
            jobs = [BatchedJob(*pairs[i], seeds[i][r]) for i, r in members]
            n = len(jobs)
            trained = train_batched(shape, jobs, recipe, device=device,
                                    on_epoch=lambda d, k, v, n=n: report(d, k, n, v))
            for (i, r), run in zip(members, trained, strict=True):
                runs[i][r] = run
            offset += n
    else:
        for i, (shape, (tr, va)) in enumerate(zip(shapes, pairs, strict=True)):
            for r, s in enumerate(seeds[i]):
                runs[i][r] = _train_once(shape, tr, va, recipe, s, device,
                                         lambda e, v: report(e, 1, 1, v))
                offset += 1
    out = []
    for task_runs in runs:
        best_run = int(np.argmax([r["val_vamp2"] for r in task_runs]))
        lobe = task_runs[best_run]["lobe"]
        for r in task_runs:
            del r["lobe"]
        out.append({"lobe": lobe, "restart": best_run,
                    "val_vamp2": task_runs[best_run]["val_vamp2"],
                    "kind": task_runs[best_run]["kind"], "width": task_runs[best_run]["width"],
                    "params": task_runs[best_run]["params"], "runs": task_runs})
    return out


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
