"""Encoder + denoising head + noise normaliser, in the upstream checkpoints' key layout.

:class:`DenoisingModel` holds ``representation_model`` (a geomfeat encoder), the head under the
architecture's own name (``vec_out`` for ViSNet, ``output_model_noise`` otherwise) and
``pos_normalizer``, so that its ``state_dict()`` has exactly the keys of the upstream files.
:func:`load_state` fills it from such a file, strictly: a missing, unexpected or mis-shaped key is
a :class:`~geomfeat.errors.CheckpointMismatchError` naming it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..encoders import ARCHITECTURES, PREFIX
from ..errors import CheckpointMismatchError, WeightsError
from ..neighbors import Edges, radius_graph
from .datasets import ConformerBatch
from .heads import DenoisingHead, head_prefix
from .noise import AccumulatedNormalization

__all__ = ["CARRIED_KEYS", "DenoisingModel", "batch_edges", "load_state"]

#: Keys of upstream files that the denoising model does not use but carries over on export.
CARRIED_KEYS = ("mean", "std", "prior_model.")


class DenoisingModel(nn.Module):
    """An encoder with its denoising head and noise normaliser.

    Parameters
    ----------
    architecture : {"visnet", "et", "tensornet"}
        Encoder architecture.
    hyperparameters : dict
        Keyword arguments of the encoder class (``cutoff`` in Å).
    """

    def __init__(self, architecture: str, hyperparameters: dict) -> None:
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise WeightsError(f"unknown architecture {architecture!r}; choose from "
                               f"{', '.join(ARCHITECTURES)}")
        self.architecture = architecture
        self.hyperparameters = dict(hyperparameters)
        self.representation_model = ARCHITECTURES[architecture](**hyperparameters)
        self.head_name = head_prefix(architecture).rstrip(".")
        self.add_module(self.head_name, DenoisingHead(self.representation_model.hidden_channels))
        self.pos_normalizer = AccumulatedNormalization(3)

    @property
    def head(self) -> DenoisingHead:
        """The denoising head."""
        return getattr(self, self.head_name)

    @property
    def cutoff(self) -> float:
        """Neighbour-list cutoff in Å."""
        return float(self.representation_model.cutoff)

    def forward(self, z: Tensor, edges: Edges) -> Tensor:
        """Predicted normalised noise ``(M, 3)`` of atoms ``z (M,)`` with neighbour list."""
        x, vec = self.representation_model(z, edges)
        return self.head(x, vec)


def batch_edges(batch: ConformerBatch, cutoff: float) -> Edges:
    """Neighbour lists of all conformers of ``batch`` (runs of equal size are searched at once)."""
    parts, start, first = [], 0, 0
    sizes = batch.sizes
    while first < len(sizes):
        last = first
        while last + 1 < len(sizes) and sizes[last + 1] == sizes[first]:
            last += 1
        n, count = sizes[first], last - first + 1
        pos = batch.pos[start:start + n * count].view(count, n, 3)
        box = None if batch.boxes is None else batch.boxes[first:last + 1]
        edges = radius_graph(pos, cutoff, box=box)
        parts.append((edges, start))
        start += n * count
        first = last + 1
    if len(parts) == 1:
        return parts[0][0]
    return Edges(index=torch.cat([e.index + offset for e, offset in parts], dim=1),
                 vec=torch.cat([e.vec for e, _ in parts]),
                 length=torch.cat([e.length for e, _ in parts]), num_nodes=start)


def load_state(model: DenoisingModel, state_dict: dict[str, Tensor], source: str
               ) -> tuple[bool, dict[str, Tensor]]:
    """Load an upstream-layout checkpoint into ``model`` strictly.

    The encoder's tensors must all be present with the right shapes. The head and the normaliser
    are loaded when the file has them (all their keys, or none: then they stay freshly
    initialised). ``mean``, ``std`` and ``prior_model.*`` are returned to be carried over.

    Returns
    -------
    head_loaded : bool
        Whether the file had a denoising head.
    carried : dict
        Tensors not used by the model, kept for export.

    Raises
    ------
    CheckpointMismatchError
        Naming the first missing, unexpected or mis-shaped key (a checkpoint of another
        architecture fails here).
    """
    expected = model.state_dict()
    carried = {k: v for k, v in state_dict.items() if k.startswith(CARRIED_KEYS)}
    given = {k: v for k, v in state_dict.items() if k not in carried}
    optional = (model.head_name + ".", "pos_normalizer.")
    unexpected = [k for k in given if k not in expected]
    if unexpected:
        raise CheckpointMismatchError(
            f"{source} does not fit a {model.architecture} denoising model: unexpected key "
            f"{unexpected[0]}" + (f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1
                                   else "")
            + "; is it a checkpoint of another architecture?")
    for group in (PREFIX, *optional):
        keys = [k for k in expected if k.startswith(group)]
        present = [k for k in keys if k in given]
        if group != PREFIX and not present:
            continue
        missing = [k for k in keys if k not in given]
        if missing:
            raise CheckpointMismatchError(
                f"{source} does not fit {model.architecture} with "
                f"{model.hyperparameters}: missing key {missing[0]}"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    for key, value in given.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise CheckpointMismatchError(
                f"{source} does not fit {model.architecture} with {model.hyperparameters}: "
                f"{key} has shape {tuple(value.shape)}, the model expects "
                f"{tuple(expected[key].shape)}")
    model.load_state_dict(given, strict=False)
    head_loaded = any(k.startswith(optional[0]) for k in given)
    return head_loaded, carried
