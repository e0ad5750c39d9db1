"""Train / validation / test splits of trajectories, and the time-lagged pairs inside each part.

A split is a list of *pieces* ``(trajectory, start, stop)`` per part. With ``by="block"`` every
trajectory is cut into contiguous blocks (of about ``block`` frames, or ``n_blocks`` per
trajectory) and the blocks are dealt at random to the three parts; with ``by="trajectory"``
whole trajectories are dealt. Every piece is its own trajectory for the time-lagged pairs, so a
pair ``(x_t, x_{t+lag})`` never spans a block edge, a trajectory edge or two parts. The seed
fixes the deal; all feature sets use the same split for a given seed, so their scores can be
compared seed by seed (paired).

Blocks are never cut shorter than ``min_length`` (the longest lag + 1): a trajectory too short
for the blocks asked for is cut into fewer, or kept whole. Only a trajectory that holds no pair
at all (shorter than ``min_length``) is left out, and :attr:`Split.left_out` says so.

Roles: the **training** part fits models; the **validation** part chooses among them (early
stopping, the best restart); the **test** part only scores the chosen model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

from ..errors import GeomfeatError

__all__ = ["PARTS", "Split", "blocks_per_trajectory", "make_split", "pieces_of",
           "standardizer"]

PARTS = ("train", "validation", "test")


@dataclass(frozen=True)
class Split:
    """The pieces ``(trajectory, start, stop)`` of each part, and how they were drawn.

    ``left_out`` holds the trajectories ``(trajectory, 0, length)`` that are in no part because
    they are shorter than ``settings["min_length"]`` frames (no time-lagged pair fits).
    """

    by: str
    seed: int
    train: list[tuple[int, int, int]]
    validation: list[tuple[int, int, int]]
    test: list[tuple[int, int, int]]
    settings: dict = field(default_factory=dict)
    left_out: list[tuple[int, int, int]] = field(default_factory=list)

    def part(self, name: str) -> list[tuple[int, int, int]]:
        """The pieces of ``"train"``, ``"validation"`` or ``"test"``."""
        if name not in PARTS:
            raise ValueError(f"unknown part {name!r}; choose from {PARTS}")
        return getattr(self, name)

    def frames(self, name: str) -> int:
        """Number of frames in a part."""
        return sum(b - a for _, a, b in self.part(name))

    def trajectories(self, name: str) -> int:
        """Number of trajectories with at least one piece in a part."""
        return len({i for i, _, _ in self.part(name)})

    def as_dict(self) -> dict:
        """JSON-ready description (pieces, frames and trajectories per part, what was left out)."""
        return {"by": self.by, "seed": self.seed, **self.settings,
                **{p: [list(x) for x in self.part(p)] for p in PARTS},
                "frames": {p: self.frames(p) for p in PARTS},
                "trajectories": {p: self.trajectories(p) for p in PARTS},
                "left_out": [{"trajectory": i, "frames": b - a,
                              "reason": f"shorter than {self.settings.get('min_length')} "
                                        "frames (the longest lag + 1): holds no pair"}
                             for i, a, b in self.left_out]}


def blocks_per_trajectory(length: int, *, block: int | None = None, n_blocks: int | None = None,
                          min_length: int = 2) -> int:
    """How many blocks a trajectory of ``length`` frames is cut into.

    ``length // block`` blocks (each ``block`` to ``2 * block`` frames), or ``n_blocks``; never
    so many that a block is shorter than ``min_length``, and at least one (the whole
    trajectory).
    """
    k = length // block if block is not None else n_blocks
    return max(1, min(int(k), length // max(1, min_length)))


def make_split(lengths: Sequence[int], *, by: str = "block", n_blocks: int | None = None,
               block: int | None = None, val_fraction: float = 0.2,
               test_fraction: float = 0.2, seed: int = 0, min_length: int = 2) -> Split:
    """Deal blocks (or trajectories) to training, validation and test.

    Parameters
    ----------
    lengths : sequence of int
        Frames per trajectory (as analysed, after any stride).
    by : {"block", "trajectory"}
        Unit that is dealt.
    n_blocks : int, optional
        Blocks per trajectory for ``by="block"`` (fewer where the blocks would be shorter
        than ``min_length``).
    block : int, optional
        Instead of ``n_blocks``: frames per block; a trajectory of ``n`` frames is cut into
        ``n // block`` equal blocks (a shorter one is kept whole). Must be ``>= min_length``.
        Neither given: 10 blocks per trajectory.
    val_fraction, test_fraction : float
        Fractions of the pieces in validation and test (each rounded, at least one piece);
        training keeps the rest and at least one piece.
    seed : int
        Seed of the deal.
    min_length : int
        Frames a piece needs (use ``max lag + 1``: a shorter piece holds no pair). Blocks are
        not cut shorter; trajectories shorter than this are left out (:attr:`Split.left_out`).

    Raises
    ------
    GeomfeatError
        Fewer than three usable pieces (the message gives the trajectory lengths), or bad
        settings.
    """
    lengths = [int(n) for n in lengths]
    if n_blocks is not None and block is not None:
        raise GeomfeatError("give block (frames per block) or n_blocks, not both")
    if by == "trajectory":
        pieces = [(i, 0, n) for i, n in enumerate(lengths)]
    elif by == "block":
        if n_blocks is not None and n_blocks < 1:
            raise GeomfeatError(f"n_blocks must be >= 1, got {n_blocks}")
        if block is not None and block < min_length:
            raise GeomfeatError(f"blocks of {block} frames are shorter than the longest lag "
                                f"+ 1 ({min_length} frames): they hold no pair")
        if block is None and n_blocks is None:
            n_blocks = 10
        pieces = []
        for i, n in enumerate(lengths):
            k = blocks_per_trajectory(n, block=block, n_blocks=n_blocks, min_length=min_length)
            edges = np.linspace(0, n, k + 1).round().astype(int)
            pieces += [(i, int(a), int(b)) for a, b in pairwise(edges)]
    else:
        raise GeomfeatError(f"split by {by!r}: choose 'block' or 'trajectory'")
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise GeomfeatError(f"val_fraction {val_fraction} and test_fraction {test_fraction} "
                            "must be in (0, 1) with a sum below 1")
    left_out = [(i, 0, n) for i, n in enumerate(lengths) if n < min_length]
    pieces = [p for p in pieces if p[2] - p[1] >= min_length]
    n = len(pieces)
    if n < 3:
        unit = "trajectories" if by == "trajectory" else "pieces"
        hint = ("use --split block, or more trajectories" if by == "trajectory" else
                "use shorter blocks (--block, --n-blocks) or a shorter lag, or longer or more "
                "trajectories")
        raise GeomfeatError(f"a train/validation/test split needs at least three {unit} of "
                            f">= {min_length} frames (the longest lag + 1), got {n} from "
                            f"trajectories of {_lengths_text(lengths)} frames: {hint}")
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
                  "block_frames": block if by == "block" else None,
                  "min_length": min_length, "val_fraction": val_fraction,
                  "test_fraction": test_fraction},
        left_out=left_out)


def _lengths_text(lengths: Sequence[int], most: int = 8) -> str:
    """``"300, 250, 120"`` (the first ``most``, then how many more)."""
    text = ", ".join(str(n) for n in lengths[:most])
    return text + (f", ... ({len(lengths) - most} more)" if len(lengths) > most else "")


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
