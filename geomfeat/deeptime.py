"""Glue between geomfeat embeddings and deeptime: VAMPNet lobes and time-lagged datasets.

Embeddings come out of :class:`geomfeat.GeomFeaturizer` as float32 arrays, one per trajectory:
``(T, D)`` for ``pool="graph"`` and ``(T, R, D)`` residue tokens for ``pool="residue"``. They go
straight into :class:`deeptime.decomposition.TICA` / :class:`~deeptime.decomposition.VAMP`.
For :class:`deeptime.decomposition.deep.VAMPNet` this module provides

- lobes (``torch.nn.Module``, float32): :class:`MLPLobe` for vectors ``(B, D)``,
  :class:`MixerLobe` (MLP-Mixer) and :class:`AttentionLobe` (transformer encoder) for token
  sets ``(B, R, D)``. All end in a head with ``softmax`` outputs ``(B, n_states)``;
- :func:`time_lagged_dataset`, :func:`train_val_split` and :func:`data_loader`, built on
  deeptime's :class:`~deeptime.util.data.TrajectoriesDataset`: a pair ``(x_t, x_{t+lag})``
  always comes from one trajectory (or one block of it), never across a boundary;
- :func:`width_for_budget` to give lobes of different shapes the same parameter budget.

Example
-------
>>> from deeptime.decomposition.deep import VAMPNet                      # doctest: +SKIP
>>> train, val, _ = train_val_split(embeddings, lagtime=10, seed=0)      # doctest: +SKIP
>>> lobe = MixerLobe(n_tokens=3, token_dim=64, n_states=5)               # doctest: +SKIP
>>> vnet = VAMPNet(lobe=lobe, learning_rate=1e-3)                        # doctest: +SKIP
>>> vnet.fit(data_loader(train, 512, shuffle=True), n_epochs=50,
...          validation_loader=data_loader(val, len(val)))               # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import torch
from deeptime.util.data import TimeLaggedDataset, TrajectoriesDataset
from torch import nn

__all__ = [
    "AttentionLobe",
    "MLPLobe",
    "MixerLobe",
    "count_parameters",
    "data_loader",
    "split_blocks",
    "time_lagged_dataset",
    "train_val_split",
    "width_for_budget",
]


# --------------------------------------------------------------------------------------------
# datasets
# --------------------------------------------------------------------------------------------

def _as_float32_list(trajs: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """One array or a list of arrays → list of C-contiguous float32 arrays (frames first)."""
    if isinstance(trajs, np.ndarray):
        trajs = [trajs]
    out = [np.ascontiguousarray(np.asarray(t), dtype=np.float32) for t in trajs]
    if not out:
        raise ValueError("no trajectories given")
    shapes = {t.shape[1:] for t in out}
    if len(shapes) != 1 or any(t.ndim < 2 for t in out):
        raise ValueError(f"trajectories must be (T, ...) arrays of one frame shape, got "
                         f"{[t.shape for t in out]}")
    return out


def time_lagged_dataset(trajs: np.ndarray | Sequence[np.ndarray],
                        lagtime: int) -> TrajectoriesDataset:
    """Time-lagged pairs ``(x[t], x[t + lagtime])`` of every trajectory, as float32.

    Parameters
    ----------
    trajs : ndarray or list of ndarray
        Trajectories ``(T_i, ...)`` (e.g. ``(T_i, D)`` embeddings or ``(T_i, R, D)`` tokens).
    lagtime : int
        Lag time in frames (> 0).

    Returns
    -------
    deeptime.util.data.TrajectoriesDataset
        ``sum_i max(T_i - lagtime, 0)`` pairs; pairs never span two trajectories. Trajectories
        not longer than ``lagtime`` are skipped with a warning (deeptime's behaviour).
    """
    if int(lagtime) != lagtime or lagtime < 1:
        raise ValueError(f"lagtime must be a positive integer, got {lagtime}")
    return TrajectoriesDataset.from_numpy(int(lagtime), _as_float32_list(trajs))


def split_blocks(lengths: Sequence[int], n_blocks: int) -> list[tuple[int, int, int]]:
    """Cut trajectories of the given lengths into ``n_blocks`` contiguous blocks each.

    Returns
    -------
    list of (trajectory, start, stop)
        Blocks in trajectory order; block sizes differ by at most one frame.
    """
    blocks = []
    for i, length in enumerate(lengths):
        edges = np.linspace(0, length, min(n_blocks, length) + 1).round().astype(int)
        blocks += [(i, int(a), int(b)) for a, b in pairwise(edges)]
    return blocks


def train_val_split(trajs: np.ndarray | Sequence[np.ndarray], lagtime: int, *,
                    by: str = "block", val_fraction: float = 0.2, n_blocks: int = 10,
                    seed: int = 0) -> tuple[TrajectoriesDataset, TrajectoriesDataset, dict]:
    """Split trajectories into training and validation time-lagged datasets.

    Parameters
    ----------
    trajs : ndarray or list of ndarray
        Trajectories ``(T_i, ...)``.
    lagtime : int
        Lag time in frames.
    by : {"block", "trajectory"}
        ``"trajectory"``: whole trajectories go to validation (needs ≥ 2 trajectories).
        ``"block"``: every trajectory is cut into ``n_blocks`` contiguous blocks and a random
        ``val_fraction`` of all blocks goes to validation. Each block is its own trajectory for
        the time-lagged pairs, so no pair spans a block edge (and none spans two sets).
    val_fraction : float
        Fraction of trajectories / blocks for validation (at least one, at most all but one).
    n_blocks : int
        Blocks per trajectory for ``by="block"``.
    seed : int
        Seed of the random assignment.

    Returns
    -------
    train, validation : deeptime.util.data.TrajectoriesDataset
    info : dict
        The split, JSON-ready: ``{"by", "seed", "train": [[traj, start, stop], ...],
        "validation": [...]}``.
    """
    data = _as_float32_list(trajs)
    if by == "trajectory":
        if len(data) < 2:
            raise ValueError("by='trajectory' needs at least two trajectories")
        pieces = [(i, 0, len(t)) for i, t in enumerate(data)]
    elif by == "block":
        pieces = split_blocks([len(t) for t in data], n_blocks)
    else:
        raise ValueError(f"by must be 'block' or 'trajectory', got {by!r}")
    pieces = [p for p in pieces if p[2] - p[1] > lagtime]
    if len(pieces) < 2:
        raise ValueError(f"fewer than two trajectories/blocks are longer than lagtime {lagtime}")
    rng = np.random.default_rng(seed)
    n_val = int(np.clip(round(val_fraction * len(pieces)), 1, len(pieces) - 1))
    val_ix = set(rng.choice(len(pieces), size=n_val, replace=False).tolist())
    train = [p for k, p in enumerate(pieces) if k not in val_ix]
    val = [p for k, p in enumerate(pieces) if k in val_ix]

    def dataset(parts: list[tuple[int, int, int]]) -> TrajectoriesDataset:
        return TrajectoriesDataset.from_numpy(lagtime, [data[i][a:b] for i, a, b in parts])

    info = {"by": by, "seed": seed, "lagtime": int(lagtime),
            "train": [list(p) for p in train], "validation": [list(p) for p in val]}
    return dataset(train), dataset(val), info


class _Pairs(torch.utils.data.Dataset):
    """All pairs of a deeptime time-lagged dataset as two tensors, indexed by batches."""

    def __init__(self, dataset: TimeLaggedDataset | TrajectoriesDataset) -> None:
        if isinstance(dataset, TrajectoriesDataset):
            x0 = np.concatenate([d.data for d in dataset.subsets])
            xt = np.concatenate([d.data_lagged for d in dataset.subsets])
        else:
            x0, xt = dataset.data, dataset.data_lagged
        self.x0 = torch.from_numpy(np.ascontiguousarray(x0, dtype=np.float32))
        self.xt = torch.from_numpy(np.ascontiguousarray(xt, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.x0)

    def __getitem__(self, index: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x0[index], self.xt[index]


def data_loader(dataset: TimeLaggedDataset | TrajectoriesDataset, batch_size: int, *,
                shuffle: bool = False, seed: int | None = None,
                drop_last: bool = False) -> torch.utils.data.DataLoader:
    """A fast ``DataLoader`` of float32 ``(x_t, x_{t+lag})`` tensor batches for VAMPNet.fit.

    The pairs are materialised once (the dataset's own pairing is kept, so nothing crosses a
    trajectory boundary) and batches are taken by index lists, not frame by frame.

    Parameters
    ----------
    dataset : TimeLaggedDataset or TrajectoriesDataset
        From :func:`time_lagged_dataset` / :func:`train_val_split` or deeptime directly.
    batch_size : int
        Pairs per batch (use ``len(dataset)`` for one validation batch).
    shuffle : bool
        Shuffle every epoch (with ``seed`` for a reproducible order).
    drop_last : bool
        Drop the last incomplete batch.
    """
    pairs = _Pairs(dataset)
    generator = None
    if seed is not None:
        generator = torch.Generator().manual_seed(seed)
    base = (torch.utils.data.RandomSampler(pairs, generator=generator) if shuffle
            else torch.utils.data.SequentialSampler(pairs))
    sampler = torch.utils.data.BatchSampler(base, batch_size=min(batch_size, len(pairs)),
                                            drop_last=drop_last)
    return torch.utils.data.DataLoader(pairs, sampler=sampler, batch_size=None)


# --------------------------------------------------------------------------------------------
# lobes
# --------------------------------------------------------------------------------------------

def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def width_for_budget(factory: Callable[[int], nn.Module], budget: int, *, step: int = 1,
                     low: int = 1, high: int = 4096) -> int:
    """The width ``w`` (a multiple of ``step``) whose ``factory(w)`` has closest to ``budget``
    trainable parameters (parameter counts must grow with the width)."""
    widths = np.arange(max(step, low - low % step), high + 1, step)
    lo, hi = 0, len(widths) - 1
    while lo < hi:  # first width with count >= budget
        mid = (lo + hi) // 2
        if count_parameters(factory(int(widths[mid]))) < budget:
            lo = mid + 1
        else:
            hi = mid
    candidates = [int(widths[k]) for k in (lo - 1, lo) if 0 <= k < len(widths)]
    return min(candidates, key=lambda w: abs(count_parameters(factory(w)) - budget))


class _Head(nn.Module):
    """Linear map to ``n_states`` followed by softmax (or identity)."""

    def __init__(self, width: int, n_states: int, softmax: bool) -> None:
        super().__init__()
        self.linear = nn.Linear(width, n_states)
        self.out = nn.Softmax(dim=-1) if softmax else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.linear(x))


class MLPLobe(nn.Module):
    """Fully connected VAMPNet lobe for vector features.

    Parameters
    ----------
    in_dim : int
        Input features ``D`` (trailing axes of the input are flattened, so ``(B, R, H)``
        tokens work with ``in_dim = R * H``).
    n_states : int
        Outputs (softmax states).
    width : int
        Hidden units per layer.
    depth : int
        Hidden layers (≥ 1).
    activation : type of nn.Module
        Non-linearity after each hidden layer.
    softmax : bool
        Softmax outputs (True) or linear outputs.

    Shapes
    ------
    input ``(B, D)`` (or ``(B, ...)`` with ``prod(...) = D``), float32; output ``(B, n_states)``.
    """

    def __init__(self, in_dim: int, n_states: int = 5, *, width: int = 64, depth: int = 3,
                 activation: type[nn.Module] = nn.ELU, softmax: bool = True) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError("depth must be >= 1")
        layers: list[nn.Module] = []
        for k in range(depth):
            layers += [nn.Linear(in_dim if k == 0 else width, width), activation()]
        self.body = nn.Sequential(*layers)
        self.head = _Head(width, n_states, softmax)
        self.in_dim, self.n_states = in_dim, n_states

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` → ``(B, n_states)``."""
        return self.head(self.body(x.flatten(1)))


class _MixerBlock(nn.Module):
    def __init__(self, n_tokens: int, width: int, token_hidden: int, channel_hidden: int,
                 activation: type[nn.Module]) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.token_mlp = nn.Sequential(nn.Linear(n_tokens, token_hidden), activation(),
                                       nn.Linear(token_hidden, n_tokens))
        self.norm2 = nn.LayerNorm(width)
        self.channel_mlp = nn.Sequential(nn.Linear(width, channel_hidden), activation(),
                                         nn.Linear(channel_hidden, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.token_mlp(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mlp(self.norm2(x))


class MixerLobe(nn.Module):
    """MLP-Mixer VAMPNet lobe over a fixed set of tokens (e.g. residue embeddings).

    The tokens are projected to ``width`` channels, pass ``depth`` mixer blocks (token-mixing
    MLP across the ``R`` tokens, channel-mixing MLP per token, pre-LayerNorm and residual
    connections), are mean-pooled over tokens after a final LayerNorm, and a linear head with
    softmax gives the states.

    Parameters
    ----------
    n_tokens : int
        Tokens ``R`` per frame (fixed: the token-mixing MLP acts on the token axis).
    token_dim : int
        Channels ``D`` per input token.
    n_states : int
        Outputs (softmax states).
    width : int
        Channels inside the mixer.
    depth : int
        Mixer blocks.
    token_hidden, channel_hidden : int, optional
        Hidden sizes of the token- and channel-mixing MLPs (default ``2 * n_tokens`` and
        ``2 * width``).
    activation : type of nn.Module
        Non-linearity inside the MLPs.
    softmax : bool
        Softmax outputs (True) or linear outputs.

    Shapes
    ------
    input ``(B, R, D)`` float32; output ``(B, n_states)``.
    """

    def __init__(self, n_tokens: int, token_dim: int, n_states: int = 5, *, width: int = 32,
                 depth: int = 2, token_hidden: int | None = None,
                 channel_hidden: int | None = None, activation: type[nn.Module] = nn.GELU,
                 softmax: bool = True) -> None:
        super().__init__()
        self.embed = nn.Linear(token_dim, width)
        self.blocks = nn.Sequential(*[
            _MixerBlock(n_tokens, width, token_hidden or 2 * n_tokens,
                        channel_hidden or 2 * width, activation) for _ in range(depth)])
        self.norm = nn.LayerNorm(width)
        self.head = _Head(width, n_states, softmax)
        self.n_tokens, self.token_dim, self.n_states = n_tokens, token_dim, n_states

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, R, D)`` → ``(B, n_states)``."""
        if x.ndim != 3 or x.shape[1:] != (self.n_tokens, self.token_dim):
            raise ValueError(f"expected (B, {self.n_tokens}, {self.token_dim}), got "
                             f"{tuple(x.shape)}")
        return self.head(self.norm(self.blocks(self.embed(x))).mean(1))


class AttentionLobe(nn.Module):
    """Self-attention (transformer encoder) VAMPNet lobe over tokens (e.g. residue embeddings).

    Tokens are projected to ``width`` channels, a learned position embedding per token index is
    added when ``n_tokens`` is given (tokens are otherwise treated as a set), ``depth``
    pre-LayerNorm transformer encoder layers mix them, and after a final LayerNorm the tokens
    are mean-pooled and a linear head with softmax gives the states.

    Parameters
    ----------
    token_dim : int
        Channels ``D`` per input token.
    n_states : int
        Outputs (softmax states).
    n_tokens : int, optional
        Tokens ``R`` per frame, for the position embedding; ``None``: no position embedding
        (any ``R`` accepted, permutation invariant).
    width : int
        Model width (a multiple of ``heads``).
    depth : int
        Encoder layers.
    heads : int
        Attention heads.
    ff_hidden : int, optional
        Feed-forward hidden size (default ``2 * width``).
    dropout : float
        Dropout inside the encoder layers (0 by default; VAMP scores are batch statistics).
    softmax : bool
        Softmax outputs (True) or linear outputs.

    Shapes
    ------
    input ``(B, R, D)`` float32; output ``(B, n_states)``.
    """

    def __init__(self, token_dim: int, n_states: int = 5, *, n_tokens: int | None = None,
                 width: int = 32, depth: int = 2, heads: int = 4, ff_hidden: int | None = None,
                 dropout: float = 0.0, softmax: bool = True) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not a multiple of heads {heads}")
        self.embed = nn.Linear(token_dim, width)
        self.position = (nn.Parameter(torch.zeros(n_tokens, width)) if n_tokens else None)
        layer = nn.TransformerEncoderLayer(width, heads, ff_hidden or 2 * width, dropout,
                                           activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = _Head(width, n_states, softmax)
        self.n_tokens, self.token_dim, self.n_states = n_tokens, token_dim, n_states

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, R, D)`` → ``(B, n_states)``."""
        if x.ndim != 3 or x.shape[2] != self.token_dim or (
                self.n_tokens and x.shape[1] != self.n_tokens):
            raise ValueError(f"expected (B, {self.n_tokens or 'R'}, {self.token_dim}), got "
                             f"{tuple(x.shape)}")
        h = self.embed(x)
        if self.position is not None:
            h = h + self.position
        return self.head(self.norm(self.encoder(h)).mean(1))
