"""The progress bar of an embedding run: frames per second on stderr, or lines in a log.

On a terminal the bar redraws itself; when stderr is not a terminal (a batch job's log) it
writes a line every 10 s at most, each on its own line and none twice.
"""

from __future__ import annotations

import re
import sys
from typing import Any

__all__ = ["progress_bar"]


def progress_bar(desc: str, total: int, enabled: bool) -> tuple[Any, bool]:
    """A ``tqdm`` bar over ``total`` frames named ``desc``, and whether stderr is a terminal."""
    from tqdm.auto import tqdm

    tty = sys.stderr.isatty()
    bar = tqdm(total=total, unit="frame", desc=desc, disable=not enabled, dynamic_ncols=True,
               file=sys.stderr if tty else _LogLines(sys.stderr),
               mininterval=0.1 if tty else 10.0)
    return bar, tty


class _LogLines:
    """tqdm's output stream for logs: each state on a line of its own, the same count once,
    from the first frame done on (a run that fails at once leaves only its error)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.last = ""

    def write(self, text: str) -> None:
        for piece in re.split(r"[\r\n]", text):
            piece = piece.strip()
            counts = piece.split("[")[0]  # "model: 40%|####  | 80/200 ": not the rate
            if re.search(r"\| 0/\d+ $", counts):  # nothing done yet: nothing to log
                continue
            if piece and counts != self.last:
                self.last = counts
                self.stream.write(piece + "\n")

    def flush(self) -> None:
        self.stream.flush()
