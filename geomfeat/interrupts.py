"""SIGTERM and Ctrl-C: how a run of any sub-command is interrupted without losing the signal.

Batch schedulers send SIGTERM at a job's time limit; within :func:`interrupts_not_lost` it
raises :class:`Terminated` (a :class:`KeyboardInterrupt`) in the main thread, so a run ends as
on Ctrl-C. Used by the command line (:mod:`geomfeat.cli`) and by ``geomfeat pretrain``
(:mod:`geomfeat.pretrain.cli`); a module of its own so that the sub-commands need not import
the top-level command line.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Terminated", "interrupts_not_lost"]


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that a run ends as on Ctrl-C."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated


@contextmanager
def interrupts_not_lost() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` and no interrupt is lost.

    Python raises a signal's exception wherever the main thread is, which may be a ``__del__``
    method or a weakref callback run by the garbage collector. An exception there is reported
    to :data:`sys.unraisablehook` and dropped, and the run would go on to its end. Here the hook
    sends such an interrupt (Ctrl-C or SIGTERM) to the main thread again, where it is raised
    in ordinary code: the signal is sent again 10 ms later, from a timer thread (sent at once,
    it would be handled inside the hook, and dropped again; should it land in a finalizer
    again, it is sent again). Outside the main thread the block changes nothing.
    """
    try:
        previous_handler = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: leave SIGTERM alone
        yield
        return
    previous_hook = sys.unraisablehook

    def redeliver(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            terminated = isinstance(unraisable.exc_value, Terminated)
            signum = signal.SIGTERM if terminated else signal.SIGINT
            again = threading.Timer(0.01, os.kill, (os.getpid(), signum))
            again.daemon = True
            again.start()
        else:
            previous_hook(unraisable)

    sys.unraisablehook = redeliver
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        signal.signal(signal.SIGTERM, previous_handler)
