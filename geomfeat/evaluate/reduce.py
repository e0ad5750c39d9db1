"""One regularisation for every feature family: PCA, its dimension chosen on held-out pieces.

Linear VAMP of many features overfits: with more dimensions than the training frames can
support, the training model's singular functions fit noise and score ~1 (no kinetic
information) on held-out data. Every family is therefore reduced the same way before it is
scored or combined:

1. standardise each feature with the **training** part's mean and sd;
2. principal components of the standardised **training** frames (exact eigen-decomposition
   of the covariance up to :data:`EXACT_MAX` features, randomised SVD above, both seeded);
3. keep the leading ``m`` components, ``m`` from a grid (1, 2, 4, ... up to
   ``n_train / FRAMES_PER_DIM`` and the family's own dimension), the ``m`` with the best
   **held-out** VAMP-2 of linear VAMP fitted on the training pieces (the selection holds out a
   quarter of its training pieces for this, :func:`~geomfeat.evaluate.select.training_halves`,
   so that its validation part only scores sets).

The test part is not read by any step. The components are whitened (unit variance on the
training frames), so a reduced family is a block of comparable coordinates that can be
concatenated with other families' blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

__all__ = ["EXACT_MAX", "FRAMES_PER_DIM", "Reduction", "dimension_grid", "fit_pca",
           "fit_reduction", "lagged_covariances", "sub_covariances", "validation_vamp2",
           "vamp2_from_covariances"]

#: Up to this many features the PCA is exact (covariance eigen-decomposition).
EXACT_MAX = 2048
#: At least this many training frames per kept dimension.
FRAMES_PER_DIM = 10


@dataclass
class Reduction:
    """Standardisation and whitened principal components fitted on training frames.

    ``mean``, ``scale``: ``(D,)``; ``components``: ``(D, M)`` (directions scaled so the
    projections have unit training variance), in order of decreasing variance; ``dim``: the
    kept number of components (``<= M``), set by :func:`fit_reduction`'s choice.
    """

    mean: np.ndarray
    scale: np.ndarray
    components: np.ndarray
    variance: np.ndarray
    dim: int
    val_scores: dict

    def transform(self, x: np.ndarray, dim: int | None = None) -> np.ndarray:
        """``(T, ...)`` frames → ``(T, dim)`` float64 whitened components (default ``self.dim``)."""
        m = self.dim if dim is None else int(dim)
        flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        return ((flat - self.mean) / self.scale) @ self.components[:, :m]


def dimension_grid(n_features: int, n_train: int, max_dim: int | None = None) -> list[int]:
    """Candidate dimensions: powers of two, and the feature count when it is small enough.

    Bounded by ``n_features``, ``n_train // FRAMES_PER_DIM`` (at least 1) and ``max_dim``.
    """
    cap = max(1, min(n_features, n_train // FRAMES_PER_DIM, max_dim or n_features))
    grid = [2 ** i for i in range(int(np.log2(cap)) + 1)]
    if cap not in grid:
        grid.append(cap)
    return grid


def _pca(z: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Leading ``n`` principal directions ``(D, n)`` and variances of centred ``z (N, D)``."""
    d = z.shape[1]
    if d <= EXACT_MAX:
        cov = (z.T @ z) / max(1, len(z) - 1)
        w, v = np.linalg.eigh(cov)
        order = np.argsort(w)[::-1][:n]
        return v[:, order], np.clip(w[order], 0.0, None)
    from sklearn.utils.extmath import randomized_svd

    _, s, vt = randomized_svd(z, n_components=n, n_iter=4, random_state=seed)
    return vt.T, s ** 2 / max(1, len(z) - 1)


def lagged_covariances(pieces: Sequence[np.ndarray], lag: int):
    """deeptime ``CovarianceModel`` (C00, C0t, Ctt, means) of the time-lagged pairs inside
    every piece: the same matrices as deeptime's ``VAMP`` estimates from time series (means
    removed, divided by the number of pairs), computed with two matrix products (deeptime's
    running-moment estimator is ~30× slower on 400 features).

    Raises
    ------
    ValueError
        No piece is longer than ``lag``, or a non-finite value.
    """
    from deeptime.covariance import CovarianceModel

    flat = [np.asarray(p, dtype=np.float64).reshape(len(p), -1) for p in pieces]
    x0 = [p[:-lag] for p in flat if len(p) > lag]
    if not x0:
        raise ValueError(f"no piece is longer than the lag time {lag}")
    a = np.concatenate(x0)
    b = np.concatenate([p[lag:] for p in flat if len(p) > lag])
    m0, mt = a.mean(0), b.mean(0)
    if not (np.isfinite(m0).all() and np.isfinite(mt).all()):
        raise ValueError("non-finite feature values")
    a -= m0
    b -= mt
    n = len(a)
    return CovarianceModel(a.T @ a / n, a.T @ b / n, b.T @ b / n, m0, mt,
                           bessels_correction=False, symmetrized=False, lagtime=int(lag),
                           data_mean_removed=True)


def sub_covariances(cov, index: np.ndarray):
    """The covariances of the features ``index`` only (a ``CovarianceModel``)."""
    from deeptime.covariance import CovarianceModel

    ix = np.ix_(index, index)
    return CovarianceModel(cov.cov_00[ix], cov.cov_0t[ix], cov.cov_tt[ix], cov.mean_0[index],
                           cov.mean_t[index], cov.bessels_correction, cov.symmetrized,
                           cov.lagtime, cov.data_mean_removed)


def vamp2_from_covariances(train, held_out, k: int) -> float:
    """VAMP-2 (dimension ``k``) of VAMP fitted on the ``train`` covariances, scored against
    the ``held_out`` covariances: the same number as :func:`validation_vamp2` on the data."""
    from deeptime.decomposition import VAMP

    model = VAMP(lagtime=train.lagtime).fit_from_covariances(train).fetch_model()
    rank = len(model.singular_values)
    # deeptime's score reads only the test model's covariances (``.cov``): no decomposition
    return float(model.score(r=2, test_model=SimpleNamespace(cov=held_out),
                             dim=min(int(k), rank)))


def validation_vamp2(train: Sequence[np.ndarray], val: Sequence[np.ndarray], lag: int,
                     k: int) -> float:
    """VAMP-2 (dimension ``k``) of linear VAMP fitted on ``train``, scored on ``val``."""
    return vamp2_from_covariances(lagged_covariances(train, lag), lagged_covariances(val, lag), k)


def fit_pca(frames: Sequence[np.ndarray], n: int, seed: int = 0) -> Reduction:
    """Standardisation and the leading ``n`` whitened principal components of ``frames``.

    ``frames``: pieces ``(T_i, ...)`` (flattened per frame); components with no variance are
    dropped, so the result may hold fewer than ``n``. ``dim`` is set to all of them.
    """
    stack = np.concatenate([np.asarray(p, dtype=np.float64).reshape(len(p), -1)
                            for p in frames])
    mean = stack.mean(0)
    scale = stack.std(0)
    scale[~(scale > 1e-8)] = 1.0
    z = (stack - mean) / scale
    vecs, var = _pca(z, max(1, min(int(n), *z.shape)), seed)
    keep = var > 1e-10 * max(var.max(initial=0.0), 1e-300)
    vecs, var = vecs[:, keep], var[keep]
    return Reduction(mean, scale, vecs / np.sqrt(var), var, len(var), {})


def fit_reduction(train: Sequence[np.ndarray], val: Sequence[np.ndarray], lag: int, *,
                  k: int = 4, max_dim: int | None = None, seed: int = 0) -> Reduction:
    """Fit the standardisation and PCA on ``train``; choose the dimension on ``val``.

    Parameters
    ----------
    train, val : sequence of ndarray
        Pieces ``(T_i, ...)`` that fit the PCA and VAMP, and held-out pieces that choose the
        dimension (flattened per frame).
    lag : int
        Lag time in frames.
    k : int
        Output dimension of the VAMP-2 that chooses (the protocol's ``n_states - 1``).
    max_dim : int, optional
        Largest dimension tried.
    seed : int
        Seed of the randomised SVD (large families).

    Returns
    -------
    Reduction
        With ``dim`` the chosen dimension and ``val_scores`` ``{m: validation VAMP-2}``.
    """
    n_train = sum(len(p) for p in train)
    grid = dimension_grid(int(np.prod(np.shape(train[0])[1:])), n_train, max_dim)
    red = fit_pca(train, grid[-1], seed)
    grid = [m for m in grid if m <= red.dim] or [red.dim]
    c_train = lagged_covariances([red.transform(p, grid[-1]) for p in train], lag)
    c_val = lagged_covariances([red.transform(p, grid[-1]) for p in val], lag)
    scores = {}
    for m in grid:  # nested components: the covariances of the first m are sub-blocks
        idx = np.arange(m)
        try:
            scores[m] = vamp2_from_covariances(sub_covariances(c_train, idx),
                                               sub_covariances(c_val, idx), k)
        except (ValueError, np.linalg.LinAlgError):
            scores[m] = float("-inf")
    red.dim = max(scores, key=lambda m: (scores[m], -m))
    red.val_scores = {str(m): s for m, s in scores.items()}
    return red
