"""Where geomfeat keeps what it downloads or caches: one folder, ``$GEOMFEAT_CACHE``.

``GEOMFEAT_CACHE``
    Folder of the local cache. Default: pooch's per-user cache folder for ``geomfeat``
    (``~/.cache/geomfeat`` on Linux). Checkpoints (:mod:`geomfeat.download`), local model cards
    (:func:`geomfeat.registry.local_models_dir`) and the readout cache of ``geomfeat compare``
    live under it.

A module of its own so that the model registry and the downloader can both ask for it without
importing each other.
"""

from __future__ import annotations

import os
from pathlib import Path

import pooch

__all__ = ["CACHE_ENV", "cache_dir"]

CACHE_ENV = "GEOMFEAT_CACHE"


def cache_dir() -> Path:
    """Folder where checkpoints are cached (``$GEOMFEAT_CACHE`` or pooch's OS cache)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path(pooch.os_cache("geomfeat"))
