"""The ``dtype`` options of :class:`~geomfeat.GeomFeaturizer`: storage type and compute mode.

``float32`` and ``float64`` compute in that type; ``tf32`` computes float32 matrix products on
TF32 tensor cores (CUDA); ``bfloat16`` and ``float16`` store float32 and compute under
``torch.autocast`` with the 16-bit type.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["AUTOCAST", "DTYPES", "reduced_precision"]

#: Storage precision of the weights, coordinates and accumulators for each ``dtype`` option.
DTYPES = {"float32": torch.float32, "float64": torch.float64, "tf32": torch.float32,
           "bfloat16": torch.float32, "float16": torch.float32}
#: Reduced-precision options, computed under ``torch.autocast`` with this type.
AUTOCAST = {"bfloat16": torch.bfloat16, "float16": torch.float16}


@contextmanager
def reduced_precision(option: str, device: torch.device) -> Iterator[None]:
    """The matmul precision / autocast of a ``dtype`` option, restored afterwards."""
    if option in AUTOCAST:
        with torch.autocast(device.type, dtype=AUTOCAST[option]):
            yield
    elif option == "tf32":
        before = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("high")  # TF32 tensor cores on CUDA
        try:
            yield
        finally:
            torch.set_float32_matmul_precision(before)
    else:
        yield
