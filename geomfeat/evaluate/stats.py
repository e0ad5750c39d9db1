"""Mean ± sd over seeds and paired comparisons of two feature sets on the same splits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["paired", "summary"]


def summary(values: Sequence[float]) -> dict:
    """``{"mean", "sd", "n", "values"}`` (sd with ``ddof=1``; 0 for one value)."""
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "sd": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
            "n": len(a), "values": [float(v) for v in a]}


def paired(scores: Sequence[float], reference: Sequence[float]) -> dict:
    """Compare two feature sets seed by seed (same splits, so the differences are paired).

    Returns
    -------
    dict
        ``diff`` (mean, sd of ``scores - reference`` per seed), ``ratio`` (of the means),
        ``wins`` (seeds where ``scores`` is higher), ``n``, ``t_p`` (two-sided paired t-test,
        NaN with fewer than two seeds or zero spread) and ``sign_p`` (two-sided exact sign test
        on the non-zero differences).
    """
    from scipy import stats

    a = np.asarray(scores, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired scores need equal lengths, got {len(a)} and {len(b)}")
    d = a - b
    t_p = float("nan")
    if len(d) > 1 and d.std(ddof=1) > 0:
        t_p = float(stats.ttest_rel(a, b).pvalue)
    nonzero = d[d != 0]
    sign_p = (float(stats.binomtest(int((nonzero > 0).sum()), len(nonzero)).pvalue)
              if len(nonzero) else 1.0)
    return {"diff": summary(d), "ratio": float(a.mean() / b.mean()),
            "wins": int((d > 0).sum()), "n": len(d), "t_p": t_p, "sign_p": sign_p}
