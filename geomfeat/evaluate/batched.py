"""Many VAMPNet lobes of one input shape trained as one batched model.

A comparison trains, for every feature set, one lobe per seed, lag and restart: twelve small
networks of the same architecture with the default settings (3 seeds × 2 lags × 2 restarts).
Trained one after the other, each optimizer step of each network pays Python and kernel-launch
overhead that dwarfs its arithmetic. Here the ``K`` networks are one model: their parameters are
stacked along a leading axis (:func:`torch.func.stack_module_state`), the lobe is evaluated for
all of them at once with :func:`torch.vmap` over :func:`torch.func.functional_call`, their VAMP-2
losses are computed batched (:func:`vamp2_batched`) and summed, and one Adam step updates them
all (:class:`_StackedAdam`, Adam's update with a learning rate per network).

Each network keeps its own recipe, exactly as :func:`geomfeat.evaluate.vampnet.train_vampnet`
runs it alone: the same initial weights (``torch.manual_seed(seed)`` before
:func:`~geomfeat.evaluate.lobes.make_lobe`), the same mini-batches (its own
``RandomSampler`` seeded with ``seed``, drawn from its own training pairs), its own validation
score per epoch (deeptime's ``vamp_score`` on its own validation pairs), its own
learning-rate plateau schedule (a ``ReduceLROnPlateau`` per network) and early stopping; a
network that stops is taken out of the stack. The sum of the losses gives every network the
gradient of its own loss, so the result equals separate training up to float32 round-off
(batched matrix products sum in another order); ``tests/test_vampnet_batched.py`` checks
weights, curves and scores against the separate training.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..deeptime import count_parameters
from .recipe import VAMPNetRecipe

__all__ = ["BatchedJob", "supports_batching", "train_batched", "vamp2_batched"]

#: Adam's defaults as ``torch.optim.Adam`` uses them (deeptime's VAMPNet optimizer).
_BETAS, _EPS = (0.9, 0.999), 1e-8


@dataclass
class BatchedJob:
    """One network to train: its pairs and its seed.

    ``train`` and ``validation`` are ``(x_t, x_{t+lag})`` float32 tensors of shape
    ``(N, *shape)``; jobs may share them (restarts of one split and lag). ``seed`` initialises
    the lobe and draws its mini-batches.
    """

    train: tuple[torch.Tensor, torch.Tensor]
    validation: tuple[torch.Tensor, torch.Tensor]
    seed: int


def supports_batching(recipe: VAMPNetRecipe) -> bool:
    """Whether :func:`train_batched` can train with ``recipe`` (VAMP-2 losses whose
    regularisation keeps every eigenvalue: ``score_mode`` ``regularize`` or ``clamp``)."""
    return recipe.score_mode in ("regularize", "clamp")


def _inv_sqrt(c: torch.Tensor, epsilon: float, mode: str) -> torch.Tensor:
    """``C^{-1/2}`` of symmetric ``(K, n, n)`` matrices as deeptime's ``sym_inverse``."""
    w, v = torch.linalg.eigh(c)
    w = torch.abs(w) + epsilon if mode == "regularize" else torch.clamp_min(w, min=epsilon)
    return (v * torch.sqrt(1.0 / w).unsqueeze(-2)) @ v.transpose(-1, -2)


def vamp2_batched(x: torch.Tensor, y: torch.Tensor, *, epsilon: float = 1e-6,
                  mode: str = "regularize") -> torch.Tensor:
    """VAMP-2 of ``K`` networks' outputs, as deeptime's ``vamp_score(method="VAMP2")`` of each.

    Parameters
    ----------
    x, y : Tensor, shape (K, B, n)
        Instantaneous and time-lagged outputs of each network.
    epsilon, mode
        Eigenvalue regularisation (``"regularize"``: ``|λ| + ε``; ``"clamp"``: ``max(λ, ε)``).

    Returns
    -------
    Tensor, shape (K,)
        ``1 + ‖C00^{-1/2} C0t Ctt^{-1/2}‖²_F`` per network, in ``x``'s dtype (computed in
        float64 like deeptime's, differentiable).
    """
    if mode not in ("regularize", "clamp"):
        raise ValueError(f"batched VAMP-2 supports score_mode regularize or clamp, not {mode!r}")
    dtype = x.dtype
    x, y = x.double(), y.double()
    x = x - x.mean(dim=1, keepdim=True)
    y = y - y.mean(dim=1, keepdim=True)
    scale = 1.0 / (x.shape[1] - 1)
    xt, yt = x.transpose(1, 2), y.transpose(1, 2)
    c00, c0t, ctt = scale * (xt @ x), scale * (xt @ y), scale * (yt @ y)
    koopman = _inv_sqrt(c00, epsilon, mode) @ c0t @ _inv_sqrt(ctt, epsilon, mode)
    return (1 + koopman.square().sum(dim=(1, 2))).to(dtype)


class _StackedAdam:
    """``torch.optim.Adam`` (default betas and eps) for parameters stacked along axis 0, with
    one learning rate per network; the step count is shared (all networks start together)."""

    def __init__(self, params: dict[str, torch.Tensor]) -> None:
        self.m = {k: torch.zeros_like(p) for k, p in params.items()}
        self.v = {k: torch.zeros_like(p) for k, p in params.items()}
        self.step_count = 0

    @torch.no_grad()
    def step(self, params: dict[str, torch.Tensor], lrs: Sequence[float]) -> None:
        self.step_count += 1
        b1, b2 = _BETAS
        bc1, bc2 = 1 - b1 ** self.step_count, 1 - b2 ** self.step_count
        bc2_sqrt = bc2 ** 0.5
        step = torch.tensor([-lr / bc1 for lr in lrs], dtype=torch.float32)
        for k, p in params.items():
            g, m, v = p.grad, self.m[k], self.v[k]
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v.sqrt() / bc2_sqrt).add_(_EPS)
            p.add_(m * step.to(p.device).view(-1, *([1] * (p.ndim - 1))) / denom)
            p.grad = None

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only the networks ``rows`` (indices into the current stack)."""
        self.m = {k: m[rows] for k, m in self.m.items()}
        self.v = {k: v[rows] for k, v in self.v.items()}


@dataclass
class _Member:
    """Book-keeping of one network: early stopping, schedule, curves."""

    job: BatchedJob
    lobe: torch.nn.Module
    kind: str
    width: int
    sampler: Any
    sched: Any
    lr_holder: torch.optim.Optimizer
    best: float = -np.inf
    best_epoch: int = 0
    best_state: dict | None = None
    epochs: int = 0
    done: bool = False

    def __post_init__(self) -> None:
        self.val_curve: list[float] = []
        self.train_curve: list[float | None] = []

    @property
    def lr(self) -> float:
        return float(self.lr_holder.param_groups[0]["lr"])


def train_batched(shape: tuple[int, ...], jobs: Sequence[BatchedJob], recipe: VAMPNetRecipe,
                  *, device: str = "cpu",
                  on_epoch: Callable[[int, int, float], None] | None = None
                  ) -> list[dict[str, Any]]:
    """Train one lobe per job as one batched model (see the module docstring).

    Parameters
    ----------
    shape : tuple of int
        Shape of one frame (``(D,)`` vectors or ``(R, D)`` tokens); the same for every job.
    jobs : sequence of BatchedJob
        The networks; training pairs with at least ``recipe.batch_size`` pairs each, or all
        with the same number of pairs (the mini-batch size must be shared).
    recipe : VAMPNetRecipe
        Training settings (:func:`supports_batching` must hold).
    on_epoch : callable, optional
        ``on_epoch(done, training, best)`` after every epoch (progress bars): ``done``
        network-epochs of ``len(jobs) × recipe.max_epochs`` (a stopped network counts as
        finished), ``training`` networks still training, ``best`` validation VAMP-2 so far.

    Returns
    -------
    list of dict
        Per job, in order, what :func:`~geomfeat.evaluate.vampnet.train_vampnet` reports per
        restart: ``lobe`` (eval mode, weights of its best validation epoch), ``kind``,
        ``width``, ``params``, ``val_vamp2``, ``best_epoch``, ``epochs``, ``steps``,
        ``stopped_early``, ``final_lr``, ``val_curve``, ``train_curve``; ``seconds`` and
        ``seconds_per_step`` are those of the whole batched fit, ``batched`` the number of
        networks it trained together.
    """
    from deeptime.decomposition.deep import vamp_score
    from torch.func import functional_call, stack_module_state

    from .lobes import make_lobe

    if not supports_batching(recipe):
        raise ValueError(f"score_mode {recipe.score_mode!r} cannot be trained batched")
    sizes = {min(recipe.batch_size, len(j.train[0])) for j in jobs}
    if len(sizes) != 1:
        raise ValueError(f"jobs need one mini-batch size, got {sorted(sizes)}")
    size = sizes.pop()
    t0 = time.perf_counter()
    members: list[_Member] = []
    inits: dict[int, tuple[torch.nn.Module, str, int]] = {}
    for job in jobs:
        if job.seed not in inits:  # the same seed gives the same lobe (the width search is slow)
            torch.manual_seed(job.seed)
            inits[job.seed] = make_lobe(shape, recipe)
        lobe, kind, width = inits[job.seed]
        lobe = copy.deepcopy(lobe).to(device)
        holder = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=recipe.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            holder, mode="max", factor=recipe.lr_factor, patience=recipe.lr_patience,
            min_lr=recipe.min_lr)
        sampler = torch.utils.data.BatchSampler(torch.utils.data.RandomSampler(
            range(len(job.train[0])), num_samples=recipe.steps_per_epoch * size,
            generator=torch.Generator().manual_seed(job.seed)), size, drop_last=False)
        members.append(_Member(job, lobe, kind, width, sampler, sched, holder))
    params, _ = stack_module_state([m.lobe for m in members])
    template = copy.deepcopy(members[0].lobe).to("meta")

    def one(p: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(template, p, (x,))

    if members[0].kind == "mlp":
        forward = torch.vmap(one)
    else:  # token lobes: vmap's batched kernels are slower than one network at a time
        def forward(p: dict, x: torch.Tensor) -> torch.Tensor:
            return torch.stack([one({k: v[r] for k, v in p.items()}, x[r])
                                for r in range(len(x))])
    adam = _StackedAdam(params)
    active = list(range(len(members)))
    train_seconds, steps_done = 0.0, 0
    for epoch in range(1, recipe.max_epochs + 1):
        t1 = time.perf_counter()
        batches = torch.stack([torch.tensor(list(members[i].sampler)) for i in active], 1)
        lrs = [members[i].lr for i in active]
        scores = []
        x = torch.empty((len(active), 2 * size, *shape))
        for b in batches:  # (K, size) indices, one row per active network
            for r, i in enumerate(active):
                torch.index_select(members[i].job.train[0], 0, b[r], out=x[r, :size])
                torch.index_select(members[i].job.train[1], 0, b[r], out=x[r, size:])
            out = forward(params, x.to(device))
            score = vamp2_batched(out[:, :size], out[:, size:], epsilon=recipe.epsilon,
                                  mode=recipe.score_mode)
            (-score).sum().backward()
            adam.step(params, lrs)
            scores.append(score.detach())
        train_seconds += time.perf_counter() - t1
        steps_done += len(batches)
        train_scores = torch.stack(scores).double().mean(0).tolist() if scores else None
        stopped = []
        with torch.no_grad():
            for r, i in enumerate(active):
                m = members[i]
                p = {k: v[r] for k, v in params.items()}
                val = m.job.validation
                score = float(vamp_score(functional_call(m.lobe.eval(), p, (val[0].to(device),)),
                                         functional_call(m.lobe, p, (val[1].to(device),)),
                                         method="VAMP2", epsilon=recipe.epsilon,
                                         mode=recipe.score_mode))
                m.lobe.train()
                score = score if np.isfinite(score) else -np.inf
                m.epochs = epoch
                m.val_curve.append(round(score, 5))
                m.train_curve.append(round(train_scores[r], 5) if train_scores else None)
                m.sched.step(score)
                if score > m.best + recipe.min_improvement:
                    m.best, m.best_epoch = score, epoch
                    m.best_state = {k: t.detach().clone() for k, t in p.items()}
                elif epoch - m.best_epoch >= recipe.patience:
                    m.done = True
                    stopped.append(r)
        if stopped:
            rows = torch.tensor([r for r in range(len(active)) if r not in stopped],
                                dtype=torch.long)
            active = [active[r] for r in rows.tolist()]
        if on_epoch is not None:
            on_epoch(sum(recipe.max_epochs if m.done else m.epochs for m in members),
                     len(active) if epoch < recipe.max_epochs else 0,
                     max(m.best for m in members))
        if stopped:
            if not active:
                break
            params = {k: v.detach()[rows].requires_grad_() for k, v in params.items()}
            adam.keep(rows)
    seconds = round(time.perf_counter() - t0, 2)
    results = []
    for m in members:
        if m.best_state is not None:
            m.lobe.load_state_dict(m.best_state)
        m.lobe.eval()
        results.append({
            "lobe": m.lobe, "kind": m.kind, "width": m.width,
            "params": count_parameters(m.lobe), "val_vamp2": float(m.best),
            "best_epoch": m.best_epoch, "epochs": m.epochs,
            "steps": m.epochs * recipe.steps_per_epoch,
            "stopped_early": m.epochs < recipe.max_epochs, "final_lr": m.lr,
            "seconds": seconds, "seconds_per_step": train_seconds / max(1, steps_done),
            "val_curve": m.val_curve, "train_curve": m.train_curve, "batched": len(members)})
    return results
