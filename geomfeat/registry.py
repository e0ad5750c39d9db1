"""The registry of pre-trained encoders.

The registry is the JSON file ``weights/registry.json`` shipped inside the package as
``geomfeat.weights``. Each entry names the checkpoint file, its public URL (pinned to the upstream
commit), its SHA-256, the architecture with its hyper-parameters, the pre-training data, the
citation and the licence.

Models trained with ``geomfeat pretrain`` are described by a *model card*, a JSON file next to
their checkpoint (see :mod:`geomfeat.pretrain.card`). A card's path can be used wherever a
registered name can, and cards placed in the cache's ``local-models`` folder
(:func:`local_models_dir`) are found by their name and listed by ``geomfeat models``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from .cache import cache_dir
from .elements import symbol
from .errors import UnknownModelError

__all__ = ["ModelCard", "get_model_card", "list_local_models", "list_models", "load_card",
           "local_models_dir"]


@dataclass(frozen=True)
class ModelCard:
    """Everything geomfeat knows about one pre-trained encoder.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"visnet-denali"``.
    file : str
        Checkpoint file name, e.g. ``"visnet_l6_h64_rbf64_r75.pth"``.
    url : str
        Public upstream URL of the checkpoint, pinned to a commit.
    sha256 : str
        Hex SHA-256 of the checkpoint file.
    architecture : str
        Encoder architecture key (``"visnet"``, ``"et"``, ``"tensornet"``).
    hyperparameters : dict
        Keyword arguments of the architecture; ``cutoff`` is in Å.
    pretraining, citation, license : str
        Provenance, shown by ``geomfeat models``.
    elements : tuple of str
        Elements of the pre-training data; others are refused unless explicitly allowed
        (``allow_unseen_elements``). Empty: not recorded, nothing refused.
    elements_source : str
        Where the element set comes from.
    path : str
        Local checkpoint file of a model card (empty for registered models, which are fetched).
    details : dict
        The whole model card of a local model (training settings, data, losses).
    """

    name: str
    file: str
    url: str
    sha256: str
    architecture: str
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    pretraining: str = ""
    citation: str = ""
    license: str = ""
    elements: tuple[str, ...] = ()
    elements_source: str = ""
    path: str = ""
    details: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def cutoff(self) -> float:
        """Neighbour-list cutoff of the encoder in Å."""
        return float(self.hyperparameters["cutoff"])

    @property
    def hidden_channels(self) -> int:
        """Width ``H`` of the per-atom scalar and vector features."""
        return int(self.hyperparameters["hidden_channels"])


def _registry_text() -> str:
    try:  # installed package (the top-level weights/ folder ships as geomfeat.weights)
        return resources.files("geomfeat.weights").joinpath("registry.json").read_text("utf-8")
    except ModuleNotFoundError:  # a source checkout on sys.path, not installed
        return (Path(__file__).resolve().parents[1] / "weights" / "registry.json").read_text(
            "utf-8")


@cache
def _load_registry() -> dict[str, ModelCard]:
    text = _registry_text()
    raw = json.loads(text)
    base = raw["base_url"].rstrip("/")
    cards = {}
    for name, entry in raw["models"].items():
        entry = dict(entry)
        url = entry.pop("url", f"{base}/{entry['file']}")
        entry["elements"] = tuple(entry.get("elements", ()))
        cards[name] = ModelCard(name=name, url=url, **entry)
    return cards


#: Name of the cache sub-folder whose model cards ``geomfeat models`` lists.
LOCAL_MODELS = "local-models"


def local_models_dir() -> Path:
    """Folder of local model cards: ``<cache>/local-models`` (see :func:`geomfeat.cache_dir`)."""
    return cache_dir() / LOCAL_MODELS


def load_card(path: str | Path) -> ModelCard:
    """Read a model card JSON written by ``geomfeat pretrain``.

    Its ``file`` (the checkpoint) is taken relative to the card's folder.

    Raises
    ------
    UnknownModelError
        If the file is missing or not a model card (the message names the file and the field).
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise UnknownModelError(f"model card not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise UnknownModelError(f"cannot read model card {path}: {exc}") from None
    required = ("name", "file", "sha256", "architecture", "hyperparameters")
    missing = [k for k in required if not isinstance(raw, dict) or k not in raw]
    if missing:
        raise UnknownModelError(f"{path} is not a geomfeat model card: no {missing[0]!r} field")
    checkpoint = (path.parent / raw["file"]).resolve()
    return ModelCard(name=str(raw["name"]), file=str(raw["file"]), url=checkpoint.as_uri(),
                     sha256=str(raw["sha256"]), architecture=str(raw["architecture"]),
                     hyperparameters=dict(raw["hyperparameters"]),
                     pretraining=str(raw.get("pretraining", "")),
                     citation=str(raw.get("citation", "")), license=str(raw.get("license", "")),
                     elements=tuple(symbol(int(z)) for z in raw.get("elements") or ()),
                     elements_source=f"model card {path.name} (its training data and parent)",
                     path=str(checkpoint), details=raw)


def list_local_models() -> list[ModelCard]:
    """Model cards in :func:`local_models_dir`, sorted by file name (unreadable ones skipped)."""
    folder = local_models_dir()
    cards = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            cards.append(load_card(path))
        except UnknownModelError:
            continue
    return cards


def list_models() -> list[str]:
    """Names of all registered encoders, in registry order."""
    return list(_load_registry())


def get_model_card(name: str | ModelCard) -> ModelCard:
    """Look up a registered encoder by name.

    Parameters
    ----------
    name : str, path or ModelCard
        Registry name, path of a model card JSON, or the name of a card in
        :func:`local_models_dir`; a card is returned unchanged.

    Raises
    ------
    UnknownModelError
        If ``name`` is none of these; the message lists the known names.
    """
    if isinstance(name, ModelCard):
        return name
    cards = _load_registry()
    name = str(name) if isinstance(name, Path) else name
    if name in cards:
        return cards[name]
    if name.endswith(".json") or Path(name).is_file():
        return load_card(name)
    local = [card for card in list_local_models() if card.name == name]
    if local:
        return local[0]
    known = ", ".join([*cards, *(card.name for card in list_local_models())])
    raise UnknownModelError(f"unknown model {name!r}; known models: {known} (or give the path "
                            "of a model card .json)")
