"""The loss log of a pre-training run: kept in its checkpoints, written as ``metrics.csv``, plotted.

Lightning's loggers keep rows in memory between flushes and average an epoch over the batches
of the current process only, so a killed or resumed run lost or changed rows. :class:`LossLog`
keeps the rows and the running epoch sums itself, as part of every checkpoint (callback state),
and writes ``metrics.csv`` from them: a resumed run's log is the uninterrupted run's, row for
row. :func:`plot_losses` draws it.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch

from ..output import write_error

__all__ = ["METRICS_COLUMNS", "LossLog", "final_train_loss", "last_metrics", "plot_losses",
           "read_metrics", "write_metrics"]


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


def read_metrics(path: Path) -> list[dict[str, str]]:
    """The rows of a ``metrics.csv`` as dicts of strings (none if the file is missing)."""
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def final_train_loss(path: Path, last: int = 10) -> float:
    """The last epoch's mean training loss, else the mean of the last logged step losses."""
    rows = read_metrics(path)
    epochs = [float(r["train_loss_epoch"]) for r in rows if r.get("train_loss_epoch")]
    if epochs:
        return epochs[-1]
    steps = [float(r["train_loss_step"]) for r in rows if r.get("train_loss_step")]
    return float(sum(steps[-last:]) / len(steps[-last:])) if steps else math.nan


def last_metrics(path: Path) -> dict[str, float]:
    """The last value of every column of a ``metrics.csv``."""
    last: dict[str, float] = {}
    for row in read_metrics(path):
        for key, value in row.items():
            if value not in ("", None):
                last[key] = float(value)
    return last


def plot_losses(metrics_csv: str | Path, png: str | Path, *, title: str = "") -> Path | None:
    """Plot training (per step) and validation losses of a Lightning ``metrics.csv`` as PNG.

    Returns the PNG's path, or None when there is nothing to plot or matplotlib is missing.
    """
    rows = read_metrics(Path(metrics_csv))
    series: dict[str, tuple[list[float], list[float]]] = {"train_loss_step": ([], []),
                                                           "val_loss": ([], [])}
    for row in rows:
        for key, (steps, values) in series.items():
            if row.get(key):
                steps.append(float(row["step"]))
                values.append(float(row[key]))
    if not any(v for _, v in series.values()):
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    labels = {"train_loss_step": "training (per logged step)", "val_loss": "validation"}
    for key, (steps, values) in series.items():
        if values:
            ax.plot(steps, values, "o-" if key == "val_loss" else "-", label=labels[key],
                    markersize=3)
    ax.set_xlabel("optimisation step")
    ax.set_ylabel("denoising loss (MSE of normalised noise)")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return Path(png)
