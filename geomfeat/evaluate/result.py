"""The result of ``geomfeat compare``: the JSON-ready report and the projections for the plots.

A module of its own so that the protocol that computes it (:mod:`~geomfeat.evaluate.protocol`)
and the report that writes it (:mod:`~geomfeat.evaluate.report`) need not import each other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CompareResult"]


@dataclass
class CompareResult:
    """Scores of a comparison; ``report`` is the JSON-ready dict (every setting and score).

    ``outputs`` (for plots, not in the JSON): per feature set, the seed-0 projections used by
    the free-energy and implied-timescale plots.
    """

    report: dict
    outputs: dict = field(default_factory=dict, repr=False)

    @property
    def feature_sets(self) -> list[str]:
        return list(self.report["feature_sets"])

    def score(self, feature_set: str, lag: int | str, model: str = "vampnet") -> dict:
        """Test VAMP-2 summary (mean, sd, n, values) of ``model`` ("vampnet" or "linear",
        the largest k) at ``lag`` (frames or its text)."""
        key = self._lag_key(lag)
        entry = self.report["scores"][feature_set][key]
        if model == "vampnet":
            return entry["vampnet"]["summary"]
        return entry["linear"]["summary"][str(max(self.report["linear_dims"]))]

    def _lag_key(self, lag: int | str) -> str:
        for d in self.report["lags"]:
            if str(lag) in (d["text"], str(d["frames"])):
                return str(d["frames"])
        raise KeyError(f"lag {lag!r} not in {[d['text'] for d in self.report['lags']]}")

    def markdown(self) -> str:
        from .report import markdown

        return markdown(self.report)

    def save(self, out: str | os.PathLike, name: str = "compare") -> list[Path]:
        """Write ``NAME.json``, ``NAME.md`` and the plots into folder ``out``."""
        from .report import write_report

        return write_report(self, Path(out), name)
