"""Validating ``device=`` options up front, with messages instead of PyTorch tracebacks."""

from __future__ import annotations

import torch

from .errors import InputError

__all__ = ["SUPPORTED_DEVICES", "check_available", "parse_device"]

#: Device types geomfeat runs on.
SUPPORTED_DEVICES = ("cpu", "cuda", "mps")


def parse_device(device: str | torch.device | None) -> torch.device | None:
    """``device`` as a ``torch.device`` (``None`` stays ``None``: CUDA when available).

    Raises
    ------
    InputError
        If it is not a device string PyTorch knows, or of a type geomfeat does not run on.
    """
    if device is None:
        return None
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        parsed = None
    if parsed is None or parsed.type not in SUPPORTED_DEVICES:
        raise InputError(f"unknown device {str(device)!r}; use 'cpu', 'cuda', 'cuda:N' "
                         "(N = GPU index) or 'mps'")
    return parsed


def check_available(device: str | torch.device | None) -> None:
    """Raise :class:`InputError` unless ``device`` exists on this machine."""
    parsed = parse_device(device)
    if parsed is None or parsed.type == "cpu":
        return
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InputError(f"device {str(device)!r}: no CUDA device is available")
        if parsed.index is not None and parsed.index >= count:
            raise InputError(f"device {str(device)!r}: this machine has {count} CUDA "
                             f"device{'s' * (count != 1)} (cuda:0 to cuda:{count - 1})")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device {str(device)!r}: Apple's MPS backend is not available here")
