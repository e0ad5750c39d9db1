"""Checks of every batch of frames before it is embedded: finite coordinates, usable boxes.

A NaN coordinate or a box too small for the cutoff would otherwise give a wrong embedding or an
obscure error from inside the neighbour search; these name the file and the frame instead.
Used by :class:`~geomfeat.GeomFeaturizer`, :class:`~geomfeat.mdanalysis.GeomEmbedding` and
fine-tuning.
"""

from __future__ import annotations

import numpy as np
import torch

from .errors import InputError
from .neighbors import perpendicular_widths

__all__ = ["check_box", "check_finite"]


def check_box(boxes: np.ndarray, cutoff: float, numbers: range, source: str) -> None:
    """Raise :class:`InputError` for a periodic box that is non-finite, singular, or narrower
    than twice ``cutoff`` (Å) in any direction (``boxes``: shape (B, 3, 3), rows are box
    vectors in Å; ``numbers``: the frame numbers of the rows; ``source``: for the message)."""
    hint = "embed without periodic boundaries (pbc=False / --no-pbc) if the molecule is whole"
    finite = np.isfinite(boxes).all(axis=(1, 2))
    if not finite.all():
        frame = numbers[int(np.argmin(finite))]
        raise InputError(f"frame {frame} of {source}: the periodic box has non-finite entries "
                         f"(NaN or inf; NaN: no cell for this frame, though the file has one); "
                         f"{hint}")
    lengths = np.linalg.norm(boxes, axis=-1).prod(axis=-1)
    volumes = np.abs(np.linalg.det(boxes))
    singular = ~(volumes > 1e-6 * lengths)  # also zero-length vectors (0 > 0 is False)
    if singular.any():
        k = int(np.argmax(singular))
        raise InputError(f"frame {numbers[k]} of {source}: the periodic box is singular (box "
                         f"vectors {np.round(boxes[k], 3).tolist()} Å span no volume); {hint}")
    widths = perpendicular_widths(torch.tensor(boxes)).min(dim=-1).values.numpy()
    small = np.flatnonzero(~(widths >= 2 * cutoff))
    if small.size:
        frame = numbers[int(small[0])]
        raise InputError(
            f"frame {frame} of {source}: the periodic box is {widths[small[0]]:.2f} Å wide, less "
            f"than twice the {cutoff} Å cutoff, so minimum images are ambiguous; {hint}"
        )


def check_finite(positions: np.ndarray, numbers: range, source: str) -> None:
    """Raise :class:`InputError` naming the first frame of ``positions`` (shape (B, N, 3)) with
    a NaN or infinite coordinate."""
    finite = np.isfinite(positions).all(axis=(1, 2))
    if not finite.all():
        frame = numbers[int(np.argmin(finite))]
        raise InputError(f"frame {frame} of {source} has non-finite coordinates (NaN or inf)")
