"""Linear VAMP-2 scores (fitted on training pieces, scored on test pieces) and timescales.

deeptime's VAMP-2 includes the constant singular function: ``1`` means no kinetic information
and a model of output dimension ``k`` scores at most ``1 + k``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["flat64", "implied_timescales", "vamp_fit", "vamp_scores"]


def flat64(trajs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``(T, ...)`` arrays → ``(T, D)`` float64 (tokens flattened)."""
    return [np.asarray(t, dtype=np.float64).reshape(len(t), -1) for t in trajs]


def vamp_fit(trajs: Sequence[np.ndarray], lag: int):
    """deeptime ``CovarianceKoopmanModel`` of linear VAMP on ``trajs`` (each its own piece)."""
    from deeptime.decomposition import VAMP

    return VAMP(lagtime=int(lag)).fit(flat64(trajs)).fetch_model()


def vamp_scores(train: Sequence[np.ndarray], test: Sequence[np.ndarray], lag: int,
                dims: Sequence[int], model=None) -> dict[str, float]:
    """Test VAMP-2 of linear VAMP fitted on ``train``, for each output dimension in ``dims``.

    The singular functions of the training model are scored against the test pieces'
    covariances (deeptime's ``score(r=2, test_model=...)``); nothing is estimated on the test
    part except those covariances.

    ``model`` is the training fit when the caller already has it.

    Returns
    -------
    dict
        ``{str(k): score}``; ``k`` larger than the feature count gives the score at full rank.
    """
    model = vamp_fit(train, lag) if model is None else model
    test_model = vamp_fit(test, lag)
    rank = len(model.singular_values)
    return {str(k): float(model.score(r=2, test_model=test_model, dim=min(int(k), rank)))
            for k in dims}


def implied_timescales(trajs: Sequence[np.ndarray], lags: Sequence[int], k: int = 2
                       ) -> np.ndarray:
    """TICA implied timescales (frames) of the ``k`` slowest processes at each lag.

    Returns
    -------
    ndarray, shape (len(lags), k)
        NaN where fewer than ``k`` finite positive timescales exist.
    """
    from deeptime.decomposition import TICA

    flat = flat64(trajs)
    out = np.full((len(lags), k), np.nan)
    for i, lag in enumerate(lags):
        long = [t for t in flat if len(t) > lag]  # shorter ones hold no pair at this lag
        if not long:
            continue
        ts = TICA(lagtime=int(lag)).fit(long).fetch_model().timescales(lagtime=int(lag))
        ts = ts[np.isfinite(ts) & (ts > 0)][:k]
        out[i, :len(ts)] = ts
    return out
