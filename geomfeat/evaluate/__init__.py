"""geomfeat.evaluate: do embeddings make better kinetic models than classical features?

An unbiased comparison of feature sets for kinetic models of MD trajectories, as a library
(:func:`compare`) and as ``geomfeat compare`` on the command line. One job per module:

- :mod:`~geomfeat.evaluate.lags`      lag times with units (``"20ps"``) → frames;
- :mod:`~geomfeat.evaluate.splits`    train / validation / test splits by blocks or trajectories;
- :mod:`~geomfeat.evaluate.features`  feature sets from spec strings (encoder readouts,
  distances, contacts, torsions, ``.npy`` arrays, concatenations);
- :mod:`~geomfeat.evaluate.readouts`  encoder readouts, one pass per trajectory, cached on
  disk and checked against each request;
- :mod:`~geomfeat.evaluate.linear`    linear VAMP-2 (train-fitted, test-scored), timescales;
- :mod:`~geomfeat.evaluate.recipe`    the VAMPNet settings (:class:`VAMPNetRecipe`);
- :mod:`~geomfeat.evaluate.lobes`     the lobe networks a recipe builds;
- :mod:`~geomfeat.evaluate.vampnet`   VAMPNet training with that recipe (deeptime's VAMPNet);
- :mod:`~geomfeat.evaluate.batched`   many VAMPNets (seeds, lags, restarts) trained as one model;
- :mod:`~geomfeat.evaluate.preflight` checks before any work (device, lags, block length);
- :mod:`~geomfeat.evaluate.stats`     mean ± sd and paired comparisons between feature sets;
- :mod:`~geomfeat.evaluate.scoring`   one feature set scored on its splits (linear, VAMPNets);
- :mod:`~geomfeat.evaluate.workers`   feature sets scored in worker processes, time left;
- :mod:`~geomfeat.evaluate.result`    :class:`CompareResult`;
- :mod:`~geomfeat.evaluate.report`    JSON, markdown and plots;
- :mod:`~geomfeat.evaluate.protocol`  the whole protocol (:func:`compare`);
- :mod:`~geomfeat.evaluate.families`  candidate feature families, sizes, a dimension budget;
- :mod:`~geomfeat.evaluate.reduce`    train-only PCA, dimension chosen on validation;
- :mod:`~geomfeat.evaluate.select`    forward selection of families by validation VAMP-2;
- :mod:`~geomfeat.evaluate.selection` :func:`select_features` end to end (features);
- :mod:`~geomfeat.evaluate.selection_report` its JSON and markdown report;
- :mod:`~geomfeat.evaluate.cli`       ``geomfeat compare`` argument parsing; ``selection_cli``
  the ``--select-features`` options, ``cli_args`` what both read alike.

Names are imported lazily (torch and deeptime load on first use).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = [
    "CompareResult",
    "Lag",
    "SelectionResult",
    "Split",
    "VAMPNetRecipe",
    "compare",
    "make_split",
    "parse_lag",
    "parse_lags",
    "select_features",
]

_LAZY = {
    "CompareResult": ".result", "compare": ".protocol",
    "Lag": ".lags", "parse_lag": ".lags", "parse_lags": ".lags",
    "Split": ".splits", "make_split": ".splits",
    "VAMPNetRecipe": ".recipe",
    "SelectionResult": ".selection", "select_features": ".selection",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

# alignment of slow components with descriptors (numpy only at import). Imported eagerly: the
# function `alignment` shares its module's name, which a lazy __getattr__ would hand out instead.
# Fine-tuning lives in geomfeat.evaluate.finetune and is imported from there explicitly (opt-in).
from .alignment import AlignmentResult, alignment, canonical_correlations, plot_alignment  # noqa: E402

__all__ += ["AlignmentResult", "alignment", "canonical_correlations", "plot_alignment"]
