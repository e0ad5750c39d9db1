"""The registry of pre-trained encoders.

The registry is the JSON file ``weights/registry.json`` shipped inside the package as
``geomfeat.weights``. Each entry names the checkpoint file, its public URL (pinned to the upstream
commit), its SHA-256, the architecture with its hyper-parameters, the pre-training data, the
citation and the licence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import UnknownModelError

__all__ = ["ModelCard", "get_model_card", "list_models"]


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


def list_models() -> list[str]:
    """Names of all registered encoders, in registry order."""
    return list(_load_registry())


def get_model_card(name: str | ModelCard) -> ModelCard:
    """Look up a registered encoder by name.

    Parameters
    ----------
    name : str or ModelCard
        Registry name; a card is returned unchanged.

    Raises
    ------
    UnknownModelError
        If ``name`` is not registered; the message lists the known names.
    """
    if isinstance(name, ModelCard):
        return name
    cards = _load_registry()
    try:
        return cards[name]
    except KeyError:
        known = ", ".join(cards)
        raise UnknownModelError(f"unknown model {name!r}; known models: {known}") from None
