"""Model cards: a trained encoder's checkpoint (upstream key layout) and its JSON description.

A card ``NAME.json`` sits next to its checkpoint ``NAME.pth`` and holds what
:func:`geomfeat.registry.load_card` needs to use it like a registered model (``name``, ``file``,
``sha256``, ``architecture``, ``hyperparameters``, ``pretraining``, ``citation``, ``license``)
plus the record of its training: the parent model, the data (files with their SHA-256 and one
hash over all), the elements seen, the settings, steps, epochs and final losses.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..elements import atomic_number
from ..output import write_error
from ..registry import ModelCard, load_card, local_models_dir
from .model import DenoisingModel

__all__ = ["CARD_SCHEMA", "data_hash", "install_card", "save_model"]

#: Version of the model card layout.
CARD_SCHEMA = 1


def data_hash(sources: list[dict[str, Any]]) -> str:
    """SHA-256 over the data descriptions (file hashes, selections, slices), order included."""
    text = json.dumps(sources, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_error(path, exc.strerror or str(exc)) from None
    except RuntimeError as exc:  # torch.save's writer: "PytorchStreamWriter failed writing ..."
        if "failed writing" not in str(exc):
            raise
        tmp.unlink(missing_ok=True)
        raise write_error(path, "the write failed") from None
    finally:
        tmp.unlink(missing_ok=True)


def save_model(model: DenoisingModel, out_dir: str | os.PathLike, name: str, *,
               carried: dict[str, torch.Tensor] | None = None, parent: ModelCard | None = None,
               data: list[dict[str, Any]] | None = None, elements: list[int] | None = None,
               training: dict[str, Any] | None = None) -> Path:
    """Write ``NAME.pth`` (upstream key layout) and its card ``NAME.json``; returns the card.

    Parameters
    ----------
    model : DenoisingModel
        The trained encoder, head and normaliser (saved on the CPU, float32).
    out_dir : path
        Folder of the two files.
    name : str
        Model name (also the file stem).
    carried : dict, optional
        Upstream tensors the model does not use (``mean``, ``std``, ``prior_model.*``), kept.
    parent : ModelCard, optional
        The model training continued from.
    data : list of dict, optional
        Descriptions of the training data sources.
    elements : list of int, optional
        Atomic numbers seen in training.
    training : dict, optional
        Settings, steps and losses.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype)
             .contiguous() for k, v in model.state_dict().items()}
    state = {**(carried or {}), **state}
    pth = out / f"{name}.pth"
    _write_atomic(pth, lambda p: torch.save(state, p))
    digest = hashlib.sha256(pth.read_bytes()).hexdigest()
    if parent is not None:
        pretraining = (f"{parent.name} ({parent.pretraining}), continued by denoising on "
                       f"{len(data or [])} data source(s) with geomfeat pretrain")
        license_ = f"{parent.license}; continued by geomfeat (MIT)"
        citation = parent.citation
    else:
        pretraining = f"denoising from scratch on {len(data or [])} data source(s) with geomfeat"
        license_ = "MIT (geomfeat); the terms of the training data apply to the weights"
        citation = "geomfeat pretrain; Pengmei et al., arXiv:2409.19838 (geom2vec recipe)"
    card = {
        "schema": CARD_SCHEMA,
        "name": name,
        "file": pth.name,
        "sha256": digest,
        "architecture": model.architecture,
        "hyperparameters": model.hyperparameters,
        "pretraining": pretraining,
        "citation": citation,
        "license": license_,
        "parent": None if parent is None else {"name": parent.name, "sha256": parent.sha256},
        # atomic numbers the encoder's embeddings were trained for (GeomFeaturizer refuses
        # others unless allow_unseen_elements); a continued model adds its parent's
        "elements": _trained_elements(elements, parent),
        "data_elements": list(elements or []),
        "data": {"sources": data or [], "sha256": data_hash(data or [])},
        "training": training or {},
        "parameters": sum(p.numel() for p in model.representation_model.parameters()),
        "geomfeat": __version__,
    }
    path = out / f"{name}.json"
    _write_atomic(path, lambda p: p.write_text(json.dumps(card, indent=2, default=str) + "\n"))
    return path


def _trained_elements(elements: list[int] | None, parent: ModelCard | None) -> list[int] | None:
    if parent is None:
        return list(elements or [])
    inherited = [atomic_number(e) for e in parent.elements]
    if not inherited:  # the parent records no element set: refuse nothing
        return None
    return sorted(set(inherited) | set(elements or []))


def install_card(card_path: str | os.PathLike) -> Path:
    """Copy a card and its checkpoint into :func:`~geomfeat.registry.local_models_dir`."""
    card = load_card(card_path)
    folder = local_models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(card.path, folder / card.file)
    target = folder / Path(card_path).name
    shutil.copyfile(card_path, target)
    return target
