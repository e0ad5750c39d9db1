"""Alignment of slow embedding components with classical descriptors (canonical correlations).

Do the slowest collective variables found in the embeddings mean anything a chemist knows? This
module answers it the way the embedding literature states the claim: fit TICA (or VAMP) on the
embeddings, take the ``n_components`` slowest components, and measure how well they are spanned
by classical descriptors (backbone torsions as sin/cos, distances, ...):

- **canonical correlations** between the two sets (CCA): the ``i``-th is the largest
  correlation between a linear combination of the components and one of the descriptors that is
  uncorrelated with the first ``i - 1`` pairs; 1 means the components' span contains that
  direction of the descriptors' span exactly, 0 that nothing linear connects them;
- the **R² of every component** regressed on all descriptors (how much of that slow component
  the descriptors explain linearly);
- the **Pearson correlation** of every component with every descriptor.

CCA is computed from thin SVDs of the centred data (orthonormal bases of both column spaces;
the canonical correlations are the singular values of ``Q_xᵀ Q_y``), which stays exact where a
covariance matrix would be ill-conditioned; directions with relative singular value below
``rtol`` are dropped as rank deficient.

Example
-------
>>> from geomfeat.evaluate import alignment, plot_alignment        # doctest: +SKIP
>>> res = alignment(embeddings, np.concatenate([np.sin(phipsi), np.cos(phipsi)], 1),
...                 lagtime=1, n_components=2,
...                 descriptor_names=["sin φ", "sin ψ", "cos φ", "cos ψ"])  # doctest: +SKIP
>>> res.canonical_correlations                                       # doctest: +SKIP
array([0.97, 0.83])
>>> plot_alignment(res)                                              # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["AlignmentResult", "alignment", "canonical_correlations", "plot_alignment"]

ArrayOrList = np.ndarray | Sequence[np.ndarray]


def _as_list(data: ArrayOrList, what: str) -> list[np.ndarray]:
    """One array or a list of arrays → list of float64 ``(T_i, D)`` arrays (trailing axes flat)."""
    if isinstance(data, np.ndarray):
        data = [data]
    out = [np.asarray(a, dtype=np.float64) for a in data]
    if not out:
        raise ValueError(f"no {what} given")
    out = [a.reshape(len(a), -1) if a.ndim != 1 else a[:, None] for a in out]
    if len({a.shape[1] for a in out}) != 1:
        raise ValueError(f"{what}: every trajectory must have the same number of features, got "
                         f"{[a.shape for a in out]}")
    for i, a in enumerate(out):
        if not np.isfinite(a).all():
            raise ValueError(f"{what}: trajectory {i} has non-finite values")
    return out


def _orthonormal_basis(a: np.ndarray, rtol: float) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal basis ``Q (T, r)`` of the centred columns of ``a`` and the map ``W (D, r)``
    with ``(a - mean) @ W = Q`` (rank ``r``: singular values above ``rtol`` × the largest)."""
    centred = a - a.mean(0)
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    keep = s > rtol * (s[0] if s.size else 0.0)
    if not keep.any():
        raise ValueError("constant data: no variance to correlate")
    return u[:, keep], vt[keep].T / s[keep]


def canonical_correlations(x: np.ndarray, y: np.ndarray, *, rtol: float = 1e-10
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Canonical correlation analysis of two data sets with the same rows.

    Parameters
    ----------
    x : ndarray, shape (T, p)
    y : ndarray, shape (T, q)
        Samples in rows.
    rtol : float
        Relative singular-value threshold below which directions count as rank deficient.

    Returns
    -------
    rho : ndarray, shape (r,)
        Canonical correlations in decreasing order, ``r = min(rank x, rank y)``, in [0, 1].
    wx : ndarray, shape (p, r)
    wy : ndarray, shape (q, r)
        Canonical weights: ``(x - x.mean(0)) @ wx[:, i]`` and ``(y - y.mean(0)) @ wy[:, i]``
        have unit variance and correlation ``rho[i]``.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise ValueError(f"x and y must be (T, p) and (T, q) with the same T, got {x.shape} "
                         f"and {y.shape}")
    if len(x) < 3:
        raise ValueError("need at least 3 samples")
    qx, mx = _orthonormal_basis(x, rtol)
    qy, my = _orthonormal_basis(y, rtol)
    a, rho, bt = np.linalg.svd(qx.T @ qy, full_matrices=False)
    scale = np.sqrt(len(x))  # unit variance (1/T normalisation) instead of unit norm
    return np.clip(rho, 0.0, 1.0), mx @ a * scale, my @ bt.T * scale


@dataclass
class AlignmentResult:
    """Canonical correlations between slow components of embeddings and descriptors.

    Attributes
    ----------
    canonical_correlations : ndarray, shape (r,)
        Decreasing, in [0, 1]; ``r = min(n_components, rank of the descriptors)``.
    component_weights : ndarray, shape (n_components, r)
        Canonical weights of the (centred) components.
    descriptor_weights : ndarray, shape (n_descriptors, r)
        Canonical weights of the (centred) descriptors.
    correlations : ndarray, shape (n_components, n_descriptors)
        Pearson correlation of every component with every descriptor.
    explained : ndarray, shape (n_components,)
        R² of every component regressed linearly (with intercept) on all descriptors.
    timescales : ndarray, shape (n_components,)
        Implied timescales of the components, in frames (``nan`` where undefined).
    method, lagtime : str, int
        How the components were found.
    descriptor_names, component_names : list of str
    n_frames : int
        Frames used (all trajectories together).
    components : list of ndarray
        The slow components ``(T_i, n_components)`` of every trajectory (not in :meth:`to_dict`).
    """

    canonical_correlations: np.ndarray
    component_weights: np.ndarray
    descriptor_weights: np.ndarray
    correlations: np.ndarray
    explained: np.ndarray
    timescales: np.ndarray
    method: str
    lagtime: int
    descriptor_names: list[str]
    component_names: list[str]
    n_frames: int
    components: list[np.ndarray] = field(repr=False, default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (everything except the component time series)."""
        return {
            "method": self.method, "lagtime": self.lagtime, "n_frames": self.n_frames,
            "component_names": self.component_names,
            "descriptor_names": self.descriptor_names,
            "canonical_correlations": self.canonical_correlations.tolist(),
            "explained_r2": dict(zip(self.component_names, self.explained.tolist(),
                                     strict=True)),
            "timescales_frames": self.timescales.tolist(),
            "correlations": {c: dict(zip(self.descriptor_names, row.tolist(), strict=True))
                             for c, row in zip(self.component_names, self.correlations,
                                               strict=True)},
            "component_weights": self.component_weights.tolist(),
            "descriptor_weights": self.descriptor_weights.tolist(),
        }


def _slow_components(embeddings: list[np.ndarray], lagtime: int, n_components: int,
                     method: str) -> tuple[list[np.ndarray], np.ndarray]:
    from deeptime.decomposition import TICA, VAMP

    if method == "tica":
        model = TICA(lagtime=lagtime, dim=n_components).fit(embeddings).fetch_model()
    elif method == "vamp":
        model = VAMP(lagtime=lagtime, dim=n_components).fit(embeddings).fetch_model()
    else:
        raise ValueError(f"method must be 'tica' or 'vamp', got {method!r}")
    if model.output_dimension < n_components:
        raise ValueError(f"the embeddings have only {model.output_dimension} linearly "
                         f"independent directions, fewer than n_components={n_components}")
    components = [model.transform(e)[:, :n_components] for e in embeddings]
    with np.errstate(divide="ignore", invalid="ignore"):
        timescales = np.asarray(model.timescales(lagtime=lagtime), np.float64)[:n_components]
    timescales = np.where(np.isfinite(timescales) & (timescales > 0), timescales, np.nan)
    return components, timescales


def alignment(embeddings: ArrayOrList, descriptors: ArrayOrList, *, lagtime: int,
              n_components: int = 2, method: str = "tica",
              descriptor_names: Sequence[str] | None = None, rtol: float = 1e-10
              ) -> AlignmentResult:
    """Canonical correlations between the slowest components of embeddings and descriptors.

    Parameters
    ----------
    embeddings : ndarray or list of ndarray
        Features ``(T_i, ...)`` per trajectory (trailing axes are flattened, e.g. residue
        tokens), e.g. from :class:`geomfeat.GeomFeaturizer`.
    descriptors : ndarray or list of ndarray
        Classical descriptors ``(T_i, P)`` of the same frames (e.g. sin/cos of φ/ψ,
        distances in nm).
    lagtime : int
        Lag time in frames of the TICA/VAMP model.
    n_components : int
        Number of slowest components to align.
    method : {"tica", "vamp"}
        :class:`deeptime.decomposition.TICA` (kinetic-map scaling) or
        :class:`~deeptime.decomposition.VAMP` (forward singular functions), fitted on all
        frames of ``embeddings``.
    descriptor_names : sequence of str, optional
        Names of the ``P`` descriptors (for the plot and the JSON).
    rtol : float
        Relative singular-value threshold for rank deficiency in the CCA.

    Returns
    -------
    AlignmentResult
    """
    emb = _as_list(embeddings, "embeddings")
    desc = _as_list(descriptors, "descriptors")
    if [len(e) for e in emb] != [len(d) for d in desc]:
        raise ValueError(f"embeddings and descriptors must have the same frames, got "
                         f"{[len(e) for e in emb]} and {[len(d) for d in desc]}")
    if int(lagtime) != lagtime or lagtime < 1:
        raise ValueError(f"lagtime must be a positive integer, got {lagtime}")
    if int(n_components) != n_components or n_components < 1:
        raise ValueError(f"n_components must be a positive integer, got {n_components}")
    n_desc = desc[0].shape[1]
    names = list(descriptor_names) if descriptor_names is not None else [
        f"d{i}" for i in range(n_desc)]
    if len(names) != n_desc:
        raise ValueError(f"{len(names)} descriptor names for {n_desc} descriptors")

    comps, timescales = _slow_components(emb, int(lagtime), int(n_components), method)
    c, d = np.concatenate(comps), np.concatenate(desc)
    rho, wc, wd = canonical_correlations(c, d, rtol=rtol)

    cs = (c - c.mean(0)) / c.std(0)
    dsd = d.std(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ds = (d - d.mean(0)) / dsd
    corr = np.where(dsd > 0, cs.T @ ds / len(c), 0.0)
    qd, _ = _orthonormal_basis(d, rtol)
    fitted = qd @ (qd.T @ (c - c.mean(0)))
    explained = (fitted**2).sum(0) / ((c - c.mean(0)) ** 2).sum(0)

    prefix = "IC" if method == "tica" else "VC"
    return AlignmentResult(
        canonical_correlations=rho, component_weights=wc, descriptor_weights=wd,
        correlations=corr, explained=explained, timescales=timescales, method=method,
        lagtime=int(lagtime), descriptor_names=names,
        component_names=[f"{prefix}{i + 1}" for i in range(int(n_components))],
        n_frames=len(c), components=comps)


def plot_alignment(result: AlignmentResult, axes: Sequence[Any] | None = None) -> Any:
    """Plot an :class:`AlignmentResult`: component–descriptor correlations and the CCA.

    Left: Pearson correlation of every slow component (rows) with every descriptor (columns),
    with the component's R² on all descriptors in the row label. Right: the canonical
    correlations.

    Parameters
    ----------
    result : AlignmentResult
    axes : pair of matplotlib Axes, optional
        Where to draw; a new figure is made when omitted.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    if axes is None:
        width = 4.0 + 0.5 * len(result.descriptor_names)
        fig, axes = plt.subplots(1, 2, figsize=(width, 1.2 + 0.6 * len(result.component_names)),
                                 gridspec_kw={"width_ratios": [3, 1]})
    ax, bx = axes
    fig = ax.figure
    image = ax.imshow(result.correlations, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    for (i, j), value in np.ndenumerate(result.correlations):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8,
                color="white" if abs(value) > 0.6 else "black")
    ax.set_xticks(range(len(result.descriptor_names)), result.descriptor_names, rotation=45,
                  ha="right")
    ax.set_yticks(range(len(result.component_names)),
                  [f"{n} (R² {r:.2f})" for n, r in zip(result.component_names, result.explained,
                                                         strict=True)])
    ax.set_title(f"correlation ({result.method.upper()}, lag {result.lagtime})")
    fig.colorbar(image, ax=ax, fraction=0.05)
    rho = result.canonical_correlations
    bx.bar(np.arange(1, len(rho) + 1), rho, color="tab:blue")
    for i, value in enumerate(rho, 1):
        bx.text(i, value + 0.02, f"{value:.2f}", ha="center", fontsize=8)
    bx.set_ylim(0, 1.1)
    bx.set_xticks(np.arange(1, len(rho) + 1))
    bx.set_xlabel("canonical pair")
    bx.set_title("canonical correlations")
    fig.tight_layout()
    return fig
