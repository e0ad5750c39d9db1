"""Run a denoising pre-training with Lightning: settings, trainer, resume checks, outputs.

>>> from geomfeat.pretrain import PretrainConfig, TrajectorySource, pretrain
>>> src = TrajectorySource("ala2.xtc", "ala2.pdb")                     # doctest: +SKIP
>>> result = pretrain([src], "runs/ala2", PretrainConfig(init="visnet-denali", max_steps=500))
...                                                                     # doctest: +SKIP
>>> GeomFeaturizer(result.card)                                        # doctest: +SKIP

Output folder ``OUT``:

``OUT/NAME.pth``, ``OUT/NAME.json``
    the best checkpoint by validation loss (upstream key layout) and its model card;
``OUT/checkpoints/last.ckpt``, ``best.ckpt``
    Lightning checkpoints (``last`` is written every ``checkpoint_every`` steps where a restart
    is exact, see :mod:`~geomfeat.pretrain.resume`: the resume point);
``OUT/metrics.csv``, ``OUT/loss.png``
    the loss curves (per logged step, per epoch and per validation), kept in the checkpoints:
    a resumed training's log is that of the uninterrupted one.

One run at a time writes ``OUT``: a run holds the lock ``.OUT.lock`` beside the folder
(:mod:`geomfeat.locks`) and a second one fails naming the holder, or waits (``wait=True``).

Size: the settings dataclass with their validation, the Lightning trainer set-up, the resume
checks and the outputs of one run; the loss log, the resume state, the model card and the
task are already modules of their own (:mod:`~geomfeat.pretrain.losslog`,
:mod:`~geomfeat.pretrain.resume`, :mod:`~geomfeat.pretrain.card`,
:mod:`~geomfeat.pretrain.task`).
"""

from __future__ import annotations

import errno
import math
import os
import signal
import threading
import time
import warnings
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, TQDMProgressBar

from .._threads import torch_threads
from ..encoders import ARCHITECTURES, read_state_dict
from ..errors import GeomfeatError, InputError
from ..locks import hold
from ..output import write_error
from ..registry import ModelCard, get_model_card
from .card import data_hash, install_card, save_model
from .datasets import ConformerDataset, ConformerSource, collate_conformers
from .losslog import LossLog, final_train_loss, last_metrics, plot_losses
from .model import DenoisingModel, load_state
from .noise import noise_seed
from .resume import ResumePoint, check_card, check_resume, finished_run
from .task import ConformerData, DenoisingTask

__all__ = ["PretrainConfig", "PretrainInterrupted", "PretrainResult", "denoising_loss",
           "plot_losses", "pretrain", "quiet_lightning"]

#: Settings that may change between a run and its resume.
RESUMABLE = ("max_steps", "max_epochs", "patience", "devices", "num_nodes", "strategy",
             "checkpoint_every", "val_every",
             "accelerator", "num_workers", "log_every", "val_batches", "threads")


class PretrainInterrupted(GeomfeatError):
    """Training stopped before its end (Ctrl-C, SIGTERM); the last periodic checkpoint is kept.

    Attributes
    ----------
    cause : BaseException or None
        What stopped it (a ``KeyboardInterrupt``; SIGTERM: :class:`geomfeat.interrupts.Terminated`).
    """

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


@dataclass
class PretrainConfig:
    """Settings of a pre-training run.

    Architecture (from scratch): ``architecture``, ``hidden_channels``, ``num_layers``,
    ``num_rbf``, ``cutoff`` (Å), ``num_heads``; or ``init``: a registered name or model card to
    continue from (its architecture; its denoising head when the file has one).

    Recipe: ``sigma`` (Å), ``lr``, ``weight_decay``, ``batch_size`` (conformers per step over all
    processes), ``max_steps`` (-1: no limit), ``max_epochs``, ``patience`` (early stopping on the
    validation loss, in validation passes; None: off), ``seed``.

    Data: ``val_fraction``, ``val_block`` (conformers per split block), ``val_every`` (steps
    between validation passes; None: every epoch), ``val_batches`` (cap per pass), ``pbc``.

    Engine: ``precision`` (Lightning's: "32-true", "bf16-mixed", "16-mixed", "64-true"),
    ``accelerator``, ``devices``, ``num_nodes``, ``strategy`` ("auto", "ddp", ...),
    ``num_workers``, ``threads`` (PyTorch CPU threads per process; None: PyTorch's default, all
    cores, which crawls when another job holds a core: give 1 on a shared machine),
    ``checkpoint_every`` (steps), ``log_every`` (steps), ``deterministic``
    (PyTorch's deterministic algorithms, warn-only: without them two CPU threads already sum
    some gradients in a varying order, and a resumed run drifts from the uninterrupted one in the
    last bits).
    """

    architecture: str = "visnet"
    hidden_channels: int = 64
    num_layers: int = 6
    num_rbf: int = 64
    cutoff: float = 7.5
    num_heads: int = 8
    init: str | None = None
    sigma: float = 0.2
    lr: float = 5e-4
    weight_decay: float = 0.0
    batch_size: int = 32
    max_steps: int = -1
    max_epochs: int = 10
    patience: int | None = None
    seed: int = 0
    val_fraction: float = 0.1
    val_block: int | None = None
    val_every: int | None = None
    val_batches: int | None = None
    pbc: bool = True
    precision: str = "32-true"
    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    num_workers: int = 0
    threads: int | None = None
    checkpoint_every: int = 50
    log_every: int = 5
    deterministic: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def hyperparameters(self) -> dict[str, Any]:
        """Encoder keyword arguments of a from-scratch model."""
        hp: dict[str, Any] = {"hidden_channels": self.hidden_channels,
                              "num_layers": self.num_layers, "num_rbf": self.num_rbf,
                              "cutoff": self.cutoff}
        if self.architecture in ("visnet", "et"):
            hp["num_heads"] = self.num_heads
        return hp


@dataclass
class PretrainResult:
    """What a run wrote and measured.

    Attributes
    ----------
    card, checkpoint : Path
        The model card and its ``.pth`` (best validation loss).
    steps, epochs : int
        Optimisation steps and epochs done (over all runs of a resumed training).
    train_loss, val_loss : float
        Last epoch's mean training loss; best validation loss (NaN without validation).
    seconds : float
        Wall time of this run.
    already_complete : bool
        The output folder held this run, finished, with these settings: nothing was done or
        written (a resume of a finished run).
    """

    card: Path
    checkpoint: Path
    steps: int
    epochs: int
    train_loss: float
    val_loss: float
    seconds: float
    already_complete: bool = False


def _initial_model(config: PretrainConfig) -> tuple[DenoisingModel, ModelCard | None, dict, bool]:
    """The model to train, its parent card, carried tensors and whether a head was loaded."""
    if config.init is None:
        if config.architecture not in ARCHITECTURES:
            raise GeomfeatError(f"unknown architecture {config.architecture!r}; choose from "
                                f"{', '.join(ARCHITECTURES)}")
        torch.manual_seed(config.seed)
        return DenoisingModel(config.architecture, config.hyperparameters()), None, {}, False
    from ..download import fetch_weights

    parent = get_model_card(config.init)
    path = fetch_weights(parent, progress=False)  # a local card's checkpoint: hash verified
    torch.manual_seed(config.seed)  # a fresh head where the file has none
    model = DenoisingModel(parent.architecture, parent.hyperparameters)
    head, carried = load_state(model, read_state_dict(path), f"checkpoint {path.name}")
    return model, parent, carried, head


def _settings(config: PretrainConfig, data: list[dict[str, Any]]) -> dict[str, Any]:
    settings = {k: v for k, v in asdict(config).items() if k not in RESUMABLE}
    settings["data_sha256"] = data_hash(data)
    return settings


def pretrain(sources: list[ConformerSource], out_dir: str | Path,
             config: PretrainConfig | None = None, *, name: str | None = None,
             resume: str | Path | None = None, progress: bool = True, install: bool = False,
             callbacks: list[Any] | None = None, wait: bool = False) -> PretrainResult:
    """Denoising pre-training (from scratch or continued) of one encoder.

    Parameters
    ----------
    sources : list of ConformerSource
        Training data; split into training and validation blocks.
    out_dir : path
        Output folder (see the module docstring).
    config : PretrainConfig, optional
        Settings (defaults: ViSNet h64, the upstream recipe).
    name : str, optional
        Model name and file stem (default: the output folder's name).
    resume : path or "auto", optional
        A Lightning checkpoint to resume from; ``"auto"``: ``OUT/checkpoints/last.ckpt``. The
        settings must equal the checkpoint's (except :data:`RESUMABLE`). With the same
        settings the result is bit for bit the uninterrupted run's (weights, normaliser,
        ``metrics.csv``, card but its wall time). A run that already finished with these
        settings is left as it is (``already_complete``); ``"auto"`` on a folder without a
        checkpoint starts a new run, with a warning.
    progress : bool
        Show Lightning's progress bar.
    install : bool
        Copy the card and checkpoint into the cache's ``local-models`` folder.
    callbacks : list, optional
        Extra Lightning callbacks.
    wait : bool
        If another run holds the output folder's lock, wait for it instead of failing.

    Raises
    ------
    InputError
        Empty training or validation split, bad frames (named) during training.
    CheckpointMismatchError
        ``init`` does not fit its architecture (the key is named).
    OutputLockedError
        Another run is writing ``out_dir`` (the holder is named).
    OutputError
        An output could not be written (the file is named).
    PretrainInterrupted
        Ctrl-C or SIGTERM: ``OUT/checkpoints/last.ckpt`` is kept.
    GeomfeatError
        A resume with changed settings (the setting is named).
    """
    config = config or PretrainConfig()
    out = Path(out_dir)
    out.resolve().parent.mkdir(parents=True, exist_ok=True)
    # the processes Lightning starts for DDP re-run the command: only the first one locks
    lock = hold([out.resolve()], wait=wait, wait_flag="--wait / wait=True") \
        if _launch_rank() == 0 else nullcontext()
    with lock, torch_threads(config.threads):
        try:
            return _pretrain(sources, out, config, name=name, resume=resume,
                             progress=progress, install=install, callbacks=callbacks)
        except OSError as exc:  # e.g. Lightning's best.ckpt on a full disk: name the file
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS):
                raise
            target = Path(exc.filename2 or exc.filename or out)
            raise write_error(target, exc.strerror or str(exc)) from None


def _launch_rank() -> int:
    """This process's rank among those a launcher (Lightning, SLURM, torchrun, MPI) started."""
    for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID", "PMI_RANK",
                "OMPI_COMM_WORLD_RANK"):
        value = os.environ.get(key, "0")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 0


def _pretrain(sources: list[ConformerSource], out: Path, config: PretrainConfig, *,
              name: str | None, resume: str | Path | None, progress: bool, install: bool,
              callbacks: list[Any] | None) -> PretrainResult:
    name = name or out.resolve().name
    started = time.perf_counter()
    if not sources:
        raise InputError("no training data given")
    split = {"val_fraction": config.val_fraction, "block": config.val_block,
             "sigma": config.sigma, "pbc": config.pbc}
    train = ConformerDataset(sources, "train", **split)
    val = ConformerDataset(sources, "val", **split)
    what = ", ".join(s.source for s in sources)
    if len(train) < config.batch_size:
        raise InputError(f"the training split of {what} has {len(train)} conformers, fewer "
                         f"than one batch of {config.batch_size}")
    if config.val_fraction > 0 and len(val) == 0:
        raise InputError(f"the validation split of {what} is empty: use a smaller val_block "
                         "(--val-block) or more data, or val_fraction 0")
    data = [s.describe() for s in sources]
    settings = _settings(config, data)
    run_record = {**asdict(config), "data_sha256": settings["data_sha256"]}
    if resume is not None and (done := finished_run(out / f"{name}.json", run_record)):
        return PretrainResult(**done, already_complete=True)

    model, parent, carried, head_loaded = _initial_model(config)
    max_z = int(model.hyperparameters.get("max_z", 100))
    elements = sorted(set(train.elements()) | set(val.elements()))
    if elements and elements[-1] >= max_z:
        raise InputError(f"{what} contains element Z={elements[-1]}, beyond the encoder's "
                         f"embedding table (max_z={max_z})")
    task = DenoisingTask(model.architecture, model.hyperparameters, lr=config.lr,
                         weight_decay=config.weight_decay, settings=settings)
    task.model.load_state_dict(model.state_dict())
    datamodule = ConformerData(train, val, batch_size=config.batch_size, seed=config.seed,
                               num_workers=config.num_workers)

    ckpt_dir = out / "checkpoints"
    ckpt_path = None
    if resume is not None:
        ckpt_path = ckpt_dir / "last.ckpt" if str(resume) == "auto" else Path(resume)
        if not ckpt_path.is_file():
            if str(resume) != "auto":
                raise GeomfeatError(f"checkpoint to resume from not found: {ckpt_path}")
            check_card(out / f"{name}.json", settings)
            warnings.warn(f"{out} holds no checkpoint to resume (checkpoints/last.ckpt): "
                          "starting a new run", stacklevel=3)
            ckpt_path = None
        else:
            check_resume(ckpt_path, settings)
    elif (held := [p for p in (ckpt_dir / "last.ckpt", out / "metrics.csv", out / f"{name}.json")
                   if p.exists()]):
        raise GeomfeatError(f"{out} already holds a run ({held[0].relative_to(out)}): resume it "
                            "(--resume) or choose another output folder")

    validate = len(val) > 0
    val_every = config.val_every
    log = LossLog(out / "metrics.csv", config.log_every)
    resume_point = ResumePoint(ckpt_dir / "last.ckpt", config.checkpoint_every,
                               (val_every if validate else 0))
    cbs: list[Any] = [log, resume_point]
    best = None
    if validate:
        best = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val_loss",
                               mode="min", save_top_k=1, enable_version_counter=False,
                               save_on_train_epoch_end=False)
        cbs.append(best)
    if config.patience is not None and validate:
        cbs.append(EarlyStopping(monitor="val_loss", patience=config.patience, mode="min"))
    if progress:
        cbs.append(TQDMProgressBar(refresh_rate=1))
    cbs.extend(callbacks or [])
    trainer = L.Trainer(
        default_root_dir=out, max_steps=config.max_steps, max_epochs=config.max_epochs,
        precision=config.precision, accelerator=config.accelerator, devices=config.devices,
        num_nodes=config.num_nodes, strategy=config.strategy, callbacks=cbs,
        logger=False, enable_progress_bar=progress,
        enable_model_summary=False, use_distributed_sampler=False,
        num_sanity_val_steps=0,
        limit_val_batches=config.val_batches if (validate and config.val_batches) else
        (1.0 if validate else 0),
        val_check_interval=val_every if (validate and val_every) else None,
        check_val_every_n_epoch=None if (validate and val_every) else 1,
        enable_checkpointing=True,
        deterministic="warn" if config.deterministic else None,
    )
    handler = signal.getsignal(signal.SIGINT)
    determinism = (torch.are_deterministic_algorithms_enabled(),
                   torch.is_deterministic_algorithms_warn_only_enabled())
    try:
        trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path)
    except SystemExit:  # Lightning exits after a graceful shutdown on Ctrl-C
        if not trainer.interrupted:
            raise
    finally:
        torch.use_deterministic_algorithms(determinism[0], warn_only=determinism[1])
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, handler)  # Lightning leaves Ctrl-C ignored
    log.write(trainer)  # (after an error, metrics.csv is that of the last checkpoint)
    if trainer.interrupted:  # Ctrl-C or an exception in a callback: keep the last checkpoint
        last = (f"{ckpt_dir / 'last.ckpt'} holds step {resume_point.saved_step}"
                if resume_point.saved_step is not None else "no checkpoint was written yet")
        raise PretrainInterrupted(
            f"training interrupted at step {trainer.global_step}; {last}: continue with "
            "--resume / resume='auto'", resume_point.stopped_by)
    if best is not None and best.best_model_score is None:  # no validation yet (short run)
        try:
            trainer.validate(task, datamodule=datamodule, verbose=False)
        except SystemExit:  # Ctrl-C: Lightning's graceful shutdown exits
            if not trainer.interrupted:
                raise
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, handler)
            raise KeyboardInterrupt from None
        best.best_model_score = trainer.callback_metrics.get("val_loss")
        log.write(trainer)

    best_path = best.best_model_path if best is not None else ""
    final = task.model
    if best_path and Path(best_path).is_file():
        final = DenoisingModel(model.architecture, model.hyperparameters)
        final.load_state_dict({k[len("model."):]: v for k, v in
                               torch.load(best_path, map_location="cpu",
                                          weights_only=False)["state_dict"].items()})
    metrics = last_metrics(out / "metrics.csv")
    val_loss = float(best.best_model_score) if (best is not None and best.best_model_score
                                                 is not None) else math.nan
    training = {
        "recipe": {k: settings[k] for k in ("sigma", "lr", "weight_decay", "batch_size",
                                            "seed", "val_fraction", "val_block", "precision")},
        "init": config.init, "head_loaded_from_init": head_loaded,
        "steps": int(trainer.global_step), "epochs": int(trainer.current_epoch),
        "train_conformers": len(train), "val_conformers": len(val),
        "final_train_loss": final_train_loss(out / "metrics.csv"),
        "final_val_loss": metrics.get("val_loss", math.nan),
        "best_val_loss": val_loss,
        "devices": trainer.world_size, "threads": torch.get_num_threads(),
        "run": run_record,
        "wall_seconds_last_run": time.perf_counter() - started,
    }
    card = out / f"{name}.json"
    if trainer.is_global_zero:
        card = save_model(final.cpu(), out, name, carried=carried, parent=parent, data=data,
                          elements=elements, training=training)
        plot_losses(out / "metrics.csv", out / "loss.png", title=name)
        if install:
            install_card(card)
    return PretrainResult(card=card, checkpoint=out / f"{name}.pth",
                          steps=training["steps"], epochs=training["epochs"],
                          train_loss=training["final_train_loss"], val_loss=val_loss,
                          seconds=time.perf_counter() - started)


def quiet_lightning() -> None:
    """Silence Lightning's info lines (devices, tips, "fit stopped") and deprecation warnings.

    Lightning's own warnings (``UserWarning``, ``PossibleUserWarning``) stay, but the one about
    a non-empty checkpoint folder, which every resume meets.
    """
    import logging

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for category in (DeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category, module=r"(lightning|torch)\b")
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")


@torch.no_grad()
def denoising_loss(model: DenoisingModel, dataset: ConformerDataset, *, batch_size: int = 32,
                   seed: int = 0, max_conformers: int | None = None) -> float:
    """Mean denoising loss of ``model`` (eval mode, its own normaliser) on ``dataset``.

    Every conformer gets the validation noise of ``seed``, so models are compared on the same
    noised inputs. The loss is averaged over atoms and components, as in training.
    """
    from .model import batch_edges

    model.eval()
    n = len(dataset) if max_conformers is None else min(len(dataset), max_conformers)
    if n == 0:
        raise InputError("no conformers to evaluate")
    total, count = 0.0, 0
    for lo in range(0, n, batch_size):
        items = [(i, noise_seed(seed, -1, i)) for i in range(lo, min(lo + batch_size, n))]
        batch = collate_conformers([dataset[item] for item in items])
        pred = model(batch.z, batch_edges(batch, model.cutoff))
        target = model.pos_normalizer(batch.noise)
        total += float(((pred - target) ** 2).sum())
        count += pred.numel()
    return total / count


def config_fields() -> list[str]:
    """Names of :class:`PretrainConfig`'s settings."""
    return [f.name for f in fields(PretrainConfig)]
