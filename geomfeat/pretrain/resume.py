"""What makes ``pretrain --resume`` exact: where the resume checkpoint is taken, and the loss log.

A resumed run must continue exactly where the uninterrupted run was. Two things need care beyond
the model, optimiser, normaliser and data-loader state that Lightning's checkpoints hold:

* **Where** ``last.ckpt`` is written. Lightning's ``ModelCheckpoint(every_n_train_steps=N)``
  writes it at the end of a batch, before a validation due after that batch and before the end of
  the epoch; a run restarted from such a checkpoint skips that validation (its loss, the best
  checkpoint and early stopping lose it) and the epoch's end. :class:`ResumePoint` writes
  ``last.ckpt`` every ``every`` steps, but never after a batch that a validation, the end of an
  epoch or the end of training follows: then it waits for the next batch. The file is written
  beside and renamed into place (a kill leaves the previous one whole).
* **The loss log.** Lightning's loggers keep rows in memory between flushes and average an epoch
  over the batches of the current process only, so a killed or resumed run loses or changes rows.
  :class:`LossLog` keeps the rows and the running epoch sums itself, as part of every checkpoint
  (callback state), and writes ``metrics.csv`` from them: a resumed run's log is the
  uninterrupted run's, row for row.

:func:`finished_run` recognises a run that already finished with the same settings, which a
resume leaves as it is.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch

from ..output import write_error

__all__ = ["METRICS_COLUMNS", "LossLog", "ResumePoint", "finished_run", "write_metrics"]

#: Columns of ``metrics.csv`` (those of Lightning's ``CSVLogger`` for this task).
METRICS_COLUMNS = ("epoch", "step", "train_loss_epoch", "train_loss_step", "val_loss")


def write_metrics(rows: list[dict[str, Any]], path: Path) -> None:
    """Write ``rows`` as ``metrics.csv`` (through a hidden file renamed into place)."""
    tmp = path.with_name(f".{path.name}.partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=METRICS_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # before the caller measures the free space
        raise


def _mean_over_processes(trainer: L.Trainer, module: L.LightningModule,
                         value: torch.Tensor) -> float:
    if trainer.world_size > 1:
        value = module.all_gather(value).float().mean()
    return float(value)


class LossLog(L.Callback):
    """Training and validation losses, kept in the checkpoints, written to ``metrics.csv``.

    Rows as Lightning's ``CSVLogger`` wrote them: ``train_loss_step`` every ``log_every`` steps,
    ``val_loss`` after every validation, ``train_loss_epoch`` (the mean over the epoch's batches,
    weighted by batch size) at the end of every epoch; ``step`` is the 0-based index of the last
    optimisation step.

    Parameters
    ----------
    path : path
        The ``metrics.csv`` to write (at every checkpoint and by :meth:`write`).
    log_every : int
        Steps between training-loss rows.
    """

    def __init__(self, path: Path, log_every: int) -> None:
        self.path, self.log_every = Path(path), int(log_every)
        self.rows: list[dict[str, Any]] = []
        self.epoch_sum, self.epoch_count = 0.0, 0

    def state_dict(self) -> dict[str, Any]:
        return {"rows": [dict(r) for r in self.rows], "epoch_sum": self.epoch_sum,
                "epoch_count": self.epoch_count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = [dict(r) for r in state["rows"]]
        self.epoch_sum, self.epoch_count = float(state["epoch_sum"]), int(state["epoch_count"])

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        value = _mean_over_processes(trainer, module, loss.detach())
        size = len(batch) * trainer.world_size
        self.epoch_sum += value * size
        self.epoch_count += size
        step = trainer.global_step - 1
        if (step + 1) % self.log_every == 0:
            self.rows.append({"epoch": trainer.current_epoch, "step": step,
                              "train_loss_step": value})

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.epoch_count:
            self.rows.append({"epoch": trainer.current_epoch, "step": trainer.global_step - 1,
                              "train_loss_epoch": self.epoch_sum / self.epoch_count})
        self.epoch_sum, self.epoch_count = 0.0, 0

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking or "val_loss" not in trainer.callback_metrics:
            return
        self.rows.append({"epoch": trainer.current_epoch, "step": trainer.global_step - 1,
                          "val_loss": float(trainer.callback_metrics["val_loss"])})

    def on_save_checkpoint(self, trainer: L.Trainer, module: L.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        self.write(trainer)

    def write(self, trainer: L.Trainer) -> None:
        """Write ``metrics.csv`` (on the global-zero process)."""
        if trainer.is_global_zero:
            try:
                write_metrics(self.rows, self.path)
            except OSError as exc:
                raise write_error(self.path, exc.strerror or str(exc)) from None


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
