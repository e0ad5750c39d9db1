"""geomfeat: frozen pre-trained geometric GNN embeddings of molecular-dynamics trajectories.

>>> from geomfeat import GeomFeaturizer
>>> emb = GeomFeaturizer("visnet-denali").transform(traj)   # doctest: +SKIP

Heavy dependencies (torch, torch-geometric, deeptime) are imported on first use of the names
that need them, so the command line answers ``geomfeat models`` or a usage error quickly.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._threads import prefer_passive_wait
from ._version import __version__
from .cache import cache_dir
from .download import fetch_weights
from .errors import GeomfeatError, InputError, InputWarning, UnknownModelError, WeightsError
from .registry import ModelCard, get_model_card, list_models

if TYPE_CHECKING:
    from .cluster import embed_many
    from .encoders import load_encoder
    from .featurizer import GeomFeaturizer

prefer_passive_wait()  # before torch starts its OpenMP threads (see geomfeat._threads)

_LAZY = {"GeomFeaturizer": ".featurizer", "load_encoder": ".encoders", "embed_many": ".cluster"}

__all__ = [
    "GeomFeaturizer",
    "GeomfeatError",
    "InputError",
    "InputWarning",
    "ModelCard",
    "UnknownModelError",
    "WeightsError",
    "__version__",
    "cache_dir",
    "embed_many",
    "fetch_weights",
    "get_model_card",
    "list_models",
    "load_encoder",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
