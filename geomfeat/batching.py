"""Automatic batch size: how many frames one forward pass may hold in a memory budget.

:class:`~geomfeat.GeomFeaturizer` (without a fixed ``batch_size``) sizes its batches from the
neighbour pairs of the first frame (:meth:`~geomfeat.GeomFeaturizer.resolve_batch_size`); the
arithmetic is here.
"""

from __future__ import annotations

import torch

__all__ = ["CPU_MEMORY_BUDGET_GIB", "GPU_MEMORY_FRACTION", "MAX_AUTO_BATCH", "budget_bytes",
           "frames_per_batch"]

#: Largest number of frames per batch chosen automatically.
MAX_AUTO_BATCH = 16384
#: Default memory budget of one batch on the CPU, GiB.
CPU_MEMORY_BUDGET_GIB = 2.0
#: Default memory budget of one batch on a GPU, as a fraction of the device's memory.
GPU_MEMORY_FRACTION = 0.4


def budget_bytes(memory_budget: float | None, device: torch.device) -> float:
    """Memory one batch may use, in bytes: ``memory_budget`` GiB if given, else
    :data:`GPU_MEMORY_FRACTION` of a GPU's memory or :data:`CPU_MEMORY_BUDGET_GIB` on the CPU."""
    if memory_budget is not None:
        return float(memory_budget) * 2**30
    if device.type == "cuda":
        return GPU_MEMORY_FRACTION * torch.cuda.get_device_properties(device).total_memory
    return CPU_MEMORY_BUDGET_GIB * 2**30


def frames_per_batch(budget: float, bytes_per_edge: int, itemsize: int, extra_layers: int,
                     hidden_channels: int, edges_per_frame: float,
                     atoms_per_frame: float = 0.0) -> int:
    """Frames per batch that fit ``budget`` bytes at ``edges_per_frame`` edges a frame.

    ``bytes_per_edge`` is the architecture's cost of one edge in float32 (scaled by
    ``itemsize``, 4 or 8 bytes). Reading out ``extra_layers + 1 > 1`` layers adds, per atom and
    extra layer, the bytes of about three copies of the ``4H`` scalar and vector channels (the
    kept state, its normalised readout, the pooled or combined output) to the per-edge cost of
    the forward pass. At least 1, at most :data:`MAX_AUTO_BATCH`.
    """
    scale = bytes_per_edge * itemsize // 4
    extra = extra_layers * 3 * 4 * hidden_channels * itemsize
    per_frame = max(edges_per_frame, 1.0) * scale + atoms_per_frame * extra
    frames = budget / per_frame
    return int(min(MAX_AUTO_BATCH, max(1, frames)))
