"""A checkpoint whose tensors do not fit the registered architecture is a clear error.

Every registered encoder (ViSNet, ET, TensorNet) is built from its own checkpoint, from the
checkpoints of the other architectures, and from its own checkpoint with one tensor reshaped or
one tensor removed; each mismatch raises :class:`CheckpointMismatchError` naming the key.
"""

from __future__ import annotations

import functools
import re

import pytest
import torch
from conftest import SHARED, need

from geomfeat.encoders import ARCHITECTURES, build_encoder
from geomfeat.errors import CheckpointMismatchError
from geomfeat.registry import get_model_card, list_models

PREFIX = "representation_model."
MODELS = list_models()


@functools.cache
def _checkpoint(model: str) -> dict[str, torch.Tensor]:
    path = need(SHARED / "weights" / get_model_card(model).file)
    return torch.load(path, map_location="cpu", weights_only=True)


def checkpoint(model: str) -> dict[str, torch.Tensor]:
    """A fresh (shallow) copy of the upstream checkpoint of ``model``."""
    return dict(_checkpoint(model))


def test_every_architecture_is_registered():
    assert {get_model_card(m).architecture for m in MODELS} >= {"visnet", "et", "tensornet"}
    assert {get_model_card(m).architecture for m in MODELS} <= set(ARCHITECTURES)


@pytest.mark.parametrize("model", MODELS)
def test_own_checkpoint_loads_every_tensor(model):
    card = get_model_card(model)
    state = checkpoint(model)
    encoder = build_encoder(card, state)
    assert isinstance(encoder, ARCHITECTURES[card.architecture])
    assert not encoder.training
    assert not any(p.requires_grad for p in encoder.parameters())
    assert encoder.cutoff == card.cutoff
    assert encoder.hidden_channels == card.hidden_channels
    loaded = encoder.state_dict()
    expected = {k[len(PREFIX) :] for k in state if k.startswith(PREFIX)}
    assert set(loaded) == expected
    for key, value in loaded.items():
        assert torch.equal(value, state[PREFIX + key].to(value.dtype)), key


CROSSED = [
    (model, other)
    for model in MODELS
    for other in MODELS
    if get_model_card(model).architecture != get_model_card(other).architecture
]


@pytest.mark.parametrize(("model", "other"), CROSSED)
def test_checkpoint_of_another_architecture_is_rejected(model, other):
    card = get_model_card(model)
    with pytest.raises(CheckpointMismatchError) as info:
        build_encoder(card, checkpoint(other))
    message = str(info.value)
    assert card.architecture in message and model in message
    assert "missing " + PREFIX in message or "unexpected " + PREFIX in message


def _layer_key(model: str) -> str:
    """A weight matrix inside the first layer of ``model``'s encoder."""
    keys = [k for k in checkpoint(model) if k.startswith(PREFIX) and ".0." in k]
    return next(k for k in keys if k.endswith(".weight") and checkpoint(model)[k].ndim == 2)


@pytest.mark.parametrize("model", MODELS)
def test_tensor_of_wrong_shape_is_named(model):
    state = checkpoint(model)
    key = _layer_key(model)
    rows, cols = state[key].shape
    state[key] = torch.zeros(rows, cols + 1)
    with pytest.raises(CheckpointMismatchError) as info:
        build_encoder(get_model_card(model), state)
    message = str(info.value)
    assert key in message
    assert str((rows, cols + 1)) in message and str((rows, cols)) in message


@pytest.mark.parametrize("model", MODELS)
def test_missing_tensor_is_named(model):
    state = checkpoint(model)
    key = _layer_key(model)
    del state[key]
    with pytest.raises(CheckpointMismatchError, match=re.escape(f"missing {key}")):
        build_encoder(get_model_card(model), state)


@pytest.mark.parametrize("model", MODELS)
def test_unexpected_tensor_is_named(model):
    state = checkpoint(model)
    key = PREFIX + "extra_layer.weight"
    state[key] = torch.zeros(3)
    with pytest.raises(CheckpointMismatchError, match=re.escape(f"unexpected {key}")):
        build_encoder(get_model_card(model), state)


@pytest.mark.parametrize("model", MODELS)
def test_hyperparameters_that_do_not_fit_are_rejected(model):
    """A card with the wrong width for the file is caught by shape, not loaded silently."""
    card = get_model_card(model)
    wrong = dict(card.hyperparameters, hidden_channels=2 * card.hidden_channels)
    bad_card = type(card)(**{**card.__dict__, "hyperparameters": wrong})
    with pytest.raises(CheckpointMismatchError, match="has shape"):
        build_encoder(bad_card, checkpoint(model))
