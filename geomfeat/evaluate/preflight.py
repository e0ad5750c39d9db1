"""Checks and choices made before ``compare`` does any work: device, lags, block length.

Everything here is cheap and fails with one readable line: a device this machine lacks, a lag
too long for a train / validation / test split of the trajectories (naming the lag, the
trajectory lengths and the longest lag that fits), a block shorter than the longest lag + 1.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import GeomfeatError
from .features import Trajectories
from .lags import Lag, parse_lag
from .splits import _lengths_text

__all__ = ["BLOCKS_PER_TRAJECTORY", "BLOCK_LAGS", "block_length", "check_lags",
           "longest_possible_lag", "resolve_device"]


def resolve_device(device: str | None) -> str:
    """``device``, checked to exist here; ``None``: ``"cuda"`` when available, else ``"cpu"``."""
    import torch

    from ..devices import check_available

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        check_available(device)
    except GeomfeatError as exc:
        raise GeomfeatError(f"device: {exc}") from None
    return str(device)


#: Default block: at least this many times the longest lag (≥ 80 % of a block's frames start a
#: pair at that lag) ...
BLOCK_LAGS = 5
#: ... and at least the longest trajectory cut into this many blocks (long blocks keep the
#: test part apart from training for slow processes; equal-length trajectories get the ten
#: blocks each of earlier versions wherever these hold pairs).
BLOCKS_PER_TRAJECTORY = 10


def block_length(block: str | int | None, n_blocks: int | None, split: str, lags: Sequence[Lag],
                 data: Trajectories) -> Lag | None:
    """The block length (frames, with its text), or ``None`` for ``n_blocks`` or whole
    trajectories.

    Default: the longer of ``BLOCK_LAGS`` × the longest lag and the longest trajectory /
    ``BLOCKS_PER_TRAJECTORY``, shortened where that would not give three pieces.
    """
    if split != "block" or n_blocks is not None:
        return None
    longest = max(lags, key=int)
    if block is None:
        by_lag = BLOCK_LAGS * int(longest)
        by_length = max(data.lengths) // BLOCKS_PER_TRAJECTORY
        cap = longest_possible_lag(data.lengths) + 1  # the longest block giving three pieces
        frames = min(max(by_lag, by_length), cap)
        wanted = max(by_lag, by_length)
        text = ("the longest block that gives three pieces" if frames < wanted
                else f"{BLOCK_LAGS} x lag {longest.text}" if by_lag >= by_length
                else f"longest trajectory / {BLOCKS_PER_TRAJECTORY}")
        return Lag(frames, text, None if data.dt_ps is None else frames * data.dt_ps)
    lag = parse_lag(block, data.dt_ps, what="block")
    if int(lag) < int(longest) + 1:
        raise GeomfeatError(f"block {lag.text} ({int(lag)} frames) must be longer than the "
                            f"longest lag {longest.text} ({int(longest)} frames): a block "
                            "holds no pair otherwise")
    return lag


def _frames_text(frames: int, dt_ps: float | None) -> str:
    return f"{frames} frames" + ("" if dt_ps is None else f" = {frames * dt_ps:g} ps")


def longest_possible_lag(lengths: Sequence[int], split: str = "block") -> int:
    """The longest lag (frames) for which ``lengths`` still give three pieces that hold pairs
    (0: none): blocks of ``lag + 1`` frames, or whole trajectories."""
    if split == "trajectory":
        ranked = sorted(lengths, reverse=True)
        return max(0, ranked[2] - 1) if len(ranked) >= 3 else 0
    lo, hi = 0, max(lengths, default=1) - 1  # sum(n // (lag + 1)) >= 3 is monotone in lag
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(n // (mid + 1) for n in lengths) >= 3:
            lo = mid
        else:
            hi = mid - 1
    return lo


def check_lags(lags: Sequence[Lag], data: Trajectories, split: str) -> None:
    """Refuse a lag too long for a split of these trajectories, naming the lag, the lengths
    and what to change."""
    most = longest_possible_lag(data.lengths, split)
    for lag in lags:
        if int(lag) > most:
            where = ("any trajectory" if int(lag) >= max(data.lengths) else
                     "three pieces (blocks or trajectories) of these trajectories")
            fix = (f"give a lag of at most {_frames_text(most, data.dt_ps)}" if most else
                   "use --split block" if split == "trajectory" else "no lag fits")
            raise GeomfeatError(
                f"lag {lag.text} ({_frames_text(int(lag), data.dt_ps)}) is too long for "
                f"{where} (frames after stride {data.stride}: {_lengths_text(data.lengths)}; "
                f"a split needs three pieces of lag + 1 frames): {fix}, a smaller --stride, "
                "or longer or more trajectories")
