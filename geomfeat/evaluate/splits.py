"""Train / validation / test splits of trajectories, and the time-lagged pairs inside each part.

A split is a list of *pieces* ``(trajectory, start, stop)`` per part. With ``by="block"`` every
trajectory is cut into ``n_blocks`` contiguous blocks and the blocks are dealt at random to
the three parts; with ``by="trajectory"`` whole trajectories are dealt. Every piece is its own
trajectory for the time-lagged pairs, so a pair ``(x_t, x_{t+lag})`` never spans a block edge,
a trajectory edge or two parts. The seed fixes the deal; all feature sets use the same split
for a given seed, so their scores can be compared seed by seed (paired).

Roles: the **training** part fits models; the **validation** part chooses among them (early
stopping, the best restart); the **test** part only scores the chosen model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..deeptime import split_blocks
from ..errors import GeomfeatError

__all__ = ["PARTS", "Split", "make_split", "pieces_of", "standardizer"]

PARTS = ("train", "validation", "test")


@dataclass(frozen=True)
class Split:
    """The pieces ``(trajectory, start, stop)`` of each part, and how they were drawn."""

    by: str
    seed: int
    train: list[tuple[int, int, int]]
    validation: list[tuple[int, int, int]]
    test: list[tuple[int, int, int]]
    settings: dict = field(default_factory=dict)

    def part(self, name: str) -> list[tuple[int, int, int]]:
        """The pieces of ``"train"``, ``"validation"`` or ``"test"``."""
        if name not in PARTS:
            raise ValueError(f"unknown part {name!r}; choose from {PARTS}")
        return getattr(self, name)

    def frames(self, name: str) -> int:
        """Number of frames in a part."""
        return sum(b - a for _, a, b in self.part(name))

    def as_dict(self) -> dict:
        """JSON-ready description."""
        return {"by": self.by, "seed": self.seed, **self.settings,
                **{p: [list(x) for x in self.part(p)] for p in PARTS},
                "frames": {p: self.frames(p) for p in PARTS}}


def make_split(lengths: Sequence[int], *, by: str = "block", n_blocks: int = 10,
               val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0,
               min_length: int = 2) -> Split:
    """Deal blocks (or trajectories) to training, validation and test.

    Parameters
    ----------
    lengths : sequence of int
        Frames per trajectory (as analysed, after any stride).
    by : {"block", "trajectory"}
        Unit that is dealt.
    n_blocks : int
        Blocks per trajectory for ``by="block"``.
    val_fraction, test_fraction : float
        Fractions of the pieces in validation and test (each rounded, at least one piece);
        training keeps the rest and at least one piece.
    seed : int
        Seed of the deal.
    min_length : int
        Pieces shorter than this are dropped (use ``max lag + 1``: such a piece holds no pair).

    Raises
    ------
    GeomfeatError
        Fewer than three usable pieces.
    """
    if by == "trajectory":
        pieces = [(i, 0, int(n)) for i, n in enumerate(lengths)]
    elif by == "block":
        if n_blocks < 1:
            raise GeomfeatError(f"n_blocks must be >= 1, got {n_blocks}")
        pieces = split_blocks([int(n) for n in lengths], n_blocks)
    else:
        raise GeomfeatError(f"split by {by!r}: choose 'block' or 'trajectory'")
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise GeomfeatError(f"val_fraction {val_fraction} and test_fraction {test_fraction} "
                            "must be in (0, 1) with a sum below 1")
    pieces = [p for p in pieces if p[2] - p[1] >= min_length]
    n = len(pieces)
    if n < 3:
        unit = "trajectories" if by == "trajectory" else "blocks"
        raise GeomfeatError(f"a train/validation/test split needs at least three {unit} of "
                            f">= {min_length} frames, got {n}")
    n_val = int(np.clip(round(val_fraction * n), 1, n - 2))
    n_test = int(np.clip(round(test_fraction * n), 1, n - 1 - n_val))
    order = np.random.default_rng(seed).permutation(n)
    val_ix, test_ix = set(order[:n_val].tolist()), set(order[n_val:n_val + n_test].tolist())
    return Split(
        by=by, seed=int(seed),
        train=[p for k, p in enumerate(pieces) if k not in val_ix and k not in test_ix],
        validation=[p for k, p in enumerate(pieces) if k in val_ix],
        test=[p for k, p in enumerate(pieces) if k in test_ix],
        settings={"n_blocks": n_blocks if by == "block" else None,
                  "val_fraction": val_fraction, "test_fraction": test_fraction})


def pieces_of(trajs: Sequence[np.ndarray], pieces: Sequence[tuple[int, int, int]]
              ) -> list[np.ndarray]:
    """The arrays ``trajs[i][start:stop]`` of the pieces (views, no copy)."""
    return [trajs[i][a:b] for i, a, b in pieces]


def standardizer(train: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of every feature over the training frames (float64).

    Features that do not vary in training get sd 1 (they stay constant, centred).
    """
    stack = np.concatenate([np.asarray(t).reshape(len(t), -1) for t in train])
    mean = stack.mean(0, dtype=np.float64)
    sd = stack.std(0, dtype=np.float64)
    sd[~(sd > 1e-8)] = 1.0
    shape = np.asarray(train[0]).shape[1:]
    return mean.reshape(shape), sd.reshape(shape)
