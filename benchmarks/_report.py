"""Shared pieces of the benchmark scripts: the environment header and writing the JSON."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path
from typing import Any


def environment(device: str) -> dict[str, Any]:
    """Device, library versions and the command line of this run."""
    import torch

    return {"device": device, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name() if device.startswith("cuda") else None,
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])}


def emit(report: dict[str, Any], out: Path | None) -> None:
    """Print the report as JSON on stdout and, if ``out`` is given, write it there too."""
    text = json.dumps(report, indent=1)
    print(text)
    if out:
        out.write_text(text + "\n")
