"""geomfeat: frozen pre-trained geometric GNN embeddings of molecular-dynamics trajectories.

>>> from geomfeat import GeomFeaturizer
>>> emb = GeomFeaturizer("visnet-denali").transform(traj)   # doctest: +SKIP
"""

from ._version import __version__
from .download import cache_dir, fetch_weights
from .encoders import load_encoder
from .errors import GeomfeatError, InputError, UnknownModelError, WeightsError
from .featurizer import GeomFeaturizer
from .registry import ModelCard, get_model_card, list_models

__all__ = [
    "GeomFeaturizer",
    "GeomfeatError",
    "InputError",
    "ModelCard",
    "UnknownModelError",
    "WeightsError",
    "__version__",
    "cache_dir",
    "fetch_weights",
    "get_model_card",
    "list_models",
    "load_encoder",
]
