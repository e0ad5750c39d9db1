"""What makes ``pretrain --resume`` exact: where the resume checkpoint is taken, and checks.

A resumed run must continue exactly where the uninterrupted run was. Two things need care beyond
the model, optimiser, normaliser and data-loader state that Lightning's checkpoints hold:

* **Where** ``last.ckpt`` is written. Lightning's ``ModelCheckpoint(every_n_train_steps=N)``
  writes it at the end of a batch, before a validation due after that batch and before the end of
  the epoch; a run restarted from such a checkpoint skips that validation (its loss, the best
  checkpoint and early stopping lose it) and the epoch's end. :class:`ResumePoint` writes
  ``last.ckpt`` every ``every`` steps, but never after a batch that a validation, the end of an
  epoch or the end of training follows: then it waits for the next batch. The file is written
  beside and renamed into place (a kill leaves the previous one whole).
* **The loss log**, kept in the checkpoints by :class:`~.losslog.LossLog`.

:func:`check_resume` refuses a resume with changed settings, naming the first;
:func:`finished_run` recognises a run that already finished with the same settings, which a
resume leaves as it is, and :func:`check_card` refuses to start over a finished run made with
other settings.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch

from ..errors import GeomfeatError
from ..output import write_error

__all__ = ["ResumePoint", "check_card", "check_resume", "finished_run"]


class ResumePoint(L.Callback):
    """Write ``last.ckpt`` every ``every`` steps, only where a restart continues exactly.

    Parameters
    ----------
    path : path
        The checkpoint (``OUT/checkpoints/last.ckpt``).
    every : int
        Steps between checkpoints (a due checkpoint that falls before a validation, an epoch's
        end or the end of training is taken after the next batch).
    val_every : int or None
        Steps between validations (None: at the end of every epoch; 0: no validation).
    """

    def __init__(self, path: Path, every: int, val_every: int | None) -> None:
        self.path, self.every, self.val_every = Path(path), int(every), val_every
        self.due = False
        self.saved_step: int | None = None  # the step of the last checkpoint written or loaded
        self.stopped_by: BaseException | None = None  # what interrupted the training

    def state_dict(self) -> dict[str, Any]:
        return {"due": self.due, "step": self.saved_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.due, self.saved_step = bool(state["due"]), state["step"]

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule,
                     exception: BaseException) -> None:
        self.stopped_by = exception

    def _exact(self, trainer: L.Trainer, batch_idx: int) -> bool:
        """Whether the run can be restarted exactly after this batch."""
        step = trainer.global_step
        if batch_idx + 1 >= trainer.num_training_batches:  # the epoch ends (and validates)
            return False
        if self.val_every and step % self.val_every == 0:  # a validation follows
            return False
        if trainer.max_steps is not None and 0 <= trainer.max_steps <= step:
            return False
        return not trainer.should_stop

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        if trainer.global_step % self.every == 0:
            self.due = True
        if not (self.due and self._exact(trainer, batch_idx)):
            return
        self.due, self.saved_step = False, trainer.global_step
        tmp = self.path.with_name(f".{self.path.name}.partial")
        try:
            trainer.save_checkpoint(tmp, weights_only=False)
            if trainer.is_global_zero:
                os.replace(tmp, self.path)
        except OSError as exc:  # the previous last.ckpt is kept
            tmp.unlink(missing_ok=True)
            raise write_error(self.path, exc.strerror or str(exc)) from None
        finally:
            if trainer.is_global_zero:
                tmp.unlink(missing_ok=True)


#: Settings that do not change a run's result (left out when recognising a finished run).
_ENGINE_ONLY = ("threads", "num_workers", "checkpoint_every")


def finished_run(card_path: Path, record: dict[str, Any]) -> dict[str, Any] | None:
    """What a finished run wrote, if ``card_path`` is the card of a run made with ``record``.

    ``record`` holds every setting and the data hash (the card keeps it as
    ``training.run``); settings in ``_ENGINE_ONLY`` may differ. The checkpoint must match the
    card's SHA-256. Returns the fields of a :class:`~.train.PretrainResult`, or None.
    """
    try:
        card = json.loads(Path(card_path).read_text())
        training = card["training"]
        saved = json.loads(json.dumps(training["run"], default=str))
        wanted = json.loads(json.dumps(record, default=str))
        pth = Path(card_path).with_name(card["file"])
        if any(saved.get(k) != wanted.get(k) for k in set(saved) | set(wanted)
               if k not in _ENGINE_ONLY):
            return None
        if hashlib.sha256(pth.read_bytes()).hexdigest() != card["sha256"]:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {"card": Path(card_path), "checkpoint": pth, "steps": int(training["steps"]),
            "epochs": int(training["epochs"]),
            "train_loss": float(training.get("final_train_loss", math.nan)),
            "val_loss": float(training.get("best_val_loss", math.nan)), "seconds": 0.0}


def check_resume(ckpt: Path, settings: dict[str, Any]) -> None:
    """Refuse to resume from ``ckpt`` with settings other than its own, naming the first."""
    try:
        saved = torch.load(ckpt, map_location="cpu", weights_only=False)["hyper_parameters"]
    except Exception as exc:
        raise GeomfeatError(f"cannot resume from {ckpt}: {exc}") from None
    _compare_settings(saved.get("settings") or {}, settings, f"cannot resume from {ckpt}")


def _compare_settings(before: dict[str, Any], settings: dict[str, Any], what: str) -> None:
    changed = [k for k in sorted(set(before) | set(settings)) if before.get(k) != settings.get(k)]
    if changed:
        k = changed[0]
        raise GeomfeatError(
            f"{what}: setting {k!r} was {before.get(k)!r}, now "
            f"{settings.get(k)!r}" + (f" (and {len(changed) - 1} more changed)"
                                      if len(changed) > 1 else "")
            + "; resume with the same settings or start a new output folder")


def check_card(card: Path, settings: dict[str, Any]) -> None:
    """Refuse to start over in a folder whose finished run was made with other settings."""
    try:
        run = json.loads(card.read_text())["training"]["run"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    before = {k: run.get(k) for k in settings}
    now = json.loads(json.dumps(settings, default=str))
    _compare_settings(json.loads(json.dumps(before, default=str)), now,
                      f"cannot resume the run in {card.parent} (it has no checkpoint)")
