"""Redraw the plots of ``geomfeat compare`` reports that need only the report's JSON.

    python benchmarks/replot_compare.py benchmarks/results/compare_*.json

Writes ``NAME_scores.png`` and, for reports with VAMPNets, ``NAME_training.png`` beside each
``NAME.json``, with the current plotting code (:mod:`geomfeat.evaluate.report`): the scores
and training curves are stored in the JSON, so the figures show exactly the measured numbers.
The free-energy and implied-timescale plots (``NAME_fes.png``, ``NAME_its.png``) need the
models' outputs on every frame, which the JSON does not hold: only a new ``geomfeat compare``
run redraws them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from geomfeat.evaluate.report import _scores_plot, _training_plot


def replot(path: Path) -> list[Path]:
    """Redraw the JSON-only plots of the report ``path``; returns the files written."""
    report = json.loads(path.read_text(encoding="utf-8"))
    name = path.with_suffix("")
    written = [name.with_name(name.name + "_scores.png")]
    _scores_plot(report, written[0])
    if report["settings"]["vampnet"]:
        written.append(name.with_name(name.name + "_training.png"))
        _training_plot(report, written[1])
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path, help="NAME.json of geomfeat compare")
    for path in parser.parse_args().reports:
        for out in replot(path):
            print(out)


if __name__ == "__main__":
    main()
