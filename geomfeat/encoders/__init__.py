"""Pre-trained encoders: one module per architecture, one loader for all.

>>> from geomfeat.encoders import load_encoder
>>> encoder = load_encoder("visnet-denali")          # doctest: +SKIP
>>> x, vec = encoder(z, radius_graph(pos, encoder.cutoff))  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..download import fetch_weights
from ..errors import CheckpointMismatchError, WeightsError
from ..registry import ModelCard, get_model_card
from .base import Encoder, GraphState, Layers, resolve_layers
from .et import EquivariantTransformerEncoder
from .tensornet import TensorNetEncoder
from .visnet import ViSNetEncoder

__all__ = [
    "ARCHITECTURES",
    "Encoder",
    "EquivariantTransformerEncoder",
    "GraphState",
    "Layers",
    "TensorNetEncoder",
    "ViSNetEncoder",
    "build_encoder",
    "load_encoder",
    "read_state_dict",
    "resolve_layers",
]

#: Architecture key in the registry -> encoder class.
ARCHITECTURES: dict[str, type[Encoder]] = {
    "visnet": ViSNetEncoder,
    "et": EquivariantTransformerEncoder,
    "tensornet": TensorNetEncoder,
}

PREFIX = "representation_model."


def build_encoder(card: ModelCard, state_dict: dict[str, torch.Tensor]) -> Encoder:
    """Instantiate the architecture of ``card`` and load the encoder tensors of a checkpoint.

    Parameters
    ----------
    card : ModelCard
        Registry entry naming the architecture and its hyper-parameters.
    state_dict : dict
        A full upstream checkpoint; only its ``representation_model.*`` tensors are used.

    Raises
    ------
    CheckpointMismatchError
        If a tensor is missing, unexpected, or of the wrong shape; the message names the key.
    """
    try:
        cls = ARCHITECTURES[card.architecture]
    except KeyError:
        raise WeightsError(
            f"model {card.name!r} needs architecture {card.architecture!r}, which this version "
            f"of geomfeat does not provide (known: {', '.join(ARCHITECTURES)})"
        ) from None
    encoder = cls(**card.hyperparameters)
    tensors = {k[len(PREFIX) :]: v for k, v in state_dict.items() if k.startswith(PREFIX)}
    expected = encoder.state_dict()
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    if missing or unexpected:
        what = [f"missing {PREFIX}{k}" for k in missing[:3]]
        what += [f"unexpected {PREFIX}{k}" for k in unexpected[:3]]
        more = len(missing) + len(unexpected) - len(what)
        raise CheckpointMismatchError(
            f"checkpoint does not fit {card.architecture} as registered for {card.name!r}: "
            + ", ".join(what)
            + (f" (and {more} more)" if more > 0 else "")
        )
    for key, value in tensors.items():
        if value.shape != expected[key].shape:
            raise CheckpointMismatchError(
                f"checkpoint does not fit {card.architecture} as registered for {card.name!r}: "
                f"{PREFIX}{key} has shape {tuple(value.shape)}, the architecture expects "
                f"{tuple(expected[key].shape)}"
            )
    encoder.load_state_dict(tensors, strict=True)
    encoder.eval()
    encoder.requires_grad_(False)
    return encoder


def load_encoder(
    model: str | ModelCard,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
) -> Encoder:
    """Fetch (if needed), verify and load a registered encoder, frozen and in eval mode.

    Parameters
    ----------
    model : str or ModelCard
        Registry name, e.g. ``"visnet-denali"``.
    device : str or torch.device
        Where the encoder runs.
    dtype : torch.dtype
        ``torch.float32`` (default) or ``torch.float64``.
    progress : bool
        Show a progress bar while downloading.
    """
    card = get_model_card(model)
    path = fetch_weights(card, progress=progress)
    return build_encoder(card, read_state_dict(path)).to(device=device, dtype=dtype)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint in the upstream key layout.

    Reads upstream ``.pth`` files (a flat state dict) and Lightning checkpoints of
    ``geomfeat pretrain`` (whose ``state_dict`` keys carry a ``model.`` prefix).
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"could not read checkpoint {path}: {exc}") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = {k[len("model."):]: v for k, v in state["state_dict"].items()
                 if k.startswith("model.")}
    if not isinstance(state, dict):
        raise WeightsError(f"checkpoint {path} is not a state dict of tensors")
    return state
