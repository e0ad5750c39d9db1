"""PyTorch's intra-op thread count, set for a block of work and restored afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["torch_threads"]


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` PyTorch threads (``None``: leave the setting alone).

    Float32 results depend on the thread count at the 1e-6 level, so the parallel paths
    (:mod:`geomfeat.cluster`, :mod:`geomfeat.mdanalysis`) take it as an explicit setting.
    """
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)
