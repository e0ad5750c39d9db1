"""``geomfeat pretrain``: denoising pre-training from the command line.

``geomfeat pretrain TRAJ [TRAJ ...] --top TOP -o OUT --init visnet-denali --steps 2000``
    continue a registered encoder (or a model card) on MD frames (domain adaptation);
``geomfeat pretrain TRAJ --top TOP -o OUT --arch et --hidden 32 --layers 3 --cutoff 5``
    train a new encoder from scratch;
``geomfeat pretrain ... -o OUT --resume``
    continue an interrupted run exactly (same settings required; a finished run is left as it
    is; a folder without a checkpoint starts a new run, with a warning);
``geomfeat pretrain conformers.xyz mols.sdf -o OUT ...``
    extended-XYZ / SDF conformers (needs ASE).

Writes ``OUT/NAME.pth`` + ``OUT/NAME.json`` (model card), ``OUT/loss.png`` and
``OUT/metrics.csv``; ``--install`` copies the card into the cache's local-models folder
(``geomfeat models`` lists it). Multi-GPU / multi-node: ``--devices N --num-nodes M
--strategy ddp`` (Lightning launches the processes; under SLURM use ``srun``).

One run at a time writes ``OUT`` (a second one fails naming the holder, or waits with ``--wait``).
Lightning's banners, tips and its dependencies' deprecation warnings are not shown; its real
warnings are, as one line each. Ctrl-C (exit status 130) and SIGTERM (143) stop at the next batch
and keep ``OUT/checkpoints/last.ckpt``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .._argtypes import DefaultsFormatter
from .._argtypes import nonnegative_int as _steps
from .._argtypes import positive_int as _positive

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``pretrain`` sub-command to ``geomfeat``'s sub-parsers."""
    p = sub.add_parser(
        "pretrain", help="denoising pre-training: continue an encoder on your frames or train "
                         "a new one", formatter_class=DefaultsFormatter,
        description="Denoising pre-training (σ-Gaussian noise on every atom, predict it) of an "
                    "encoder on MD frames or conformer files, with PyTorch Lightning. Writes a "
                    "checkpoint in the upstream layout and a model card usable as --model.")
    p.add_argument("data", nargs="+", metavar="DATA",
                   help="trajectories (with --top) and/or .xyz/.extxyz/.sdf conformer files")
    p.add_argument("--top", metavar="TOP", help="topology of the trajectories")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder")
    p.add_argument("--name", help="model name and file stem (default: the folder's name)")
    model = p.add_argument_group("model (from scratch, or --init)")
    model.add_argument("--init", metavar="MODEL",
                       help="continue this registered model or model card (its architecture "
                            "and, when the file has one, its denoising head)")
    model.add_argument("--arch", default="visnet", choices=("visnet", "et", "tensornet"),
                       help="architecture of a model trained from scratch")
    model.add_argument("--hidden", type=_positive, default=64, help="feature width H")
    model.add_argument("--layers", type=_positive, default=6, help="interaction layers")
    model.add_argument("--rbf", type=_positive, default=64, help="radial basis functions")
    model.add_argument("--cutoff", type=float, default=7.5, help="cutoff in Å")
    model.add_argument("--heads", type=_positive, default=8, help="attention heads")
    data = p.add_argument_group("data")
    data.add_argument("--select", default="all",
                      help="atoms of every frame: 'all' (default, whole molecules), 'heavy' or "
                           "an MDAnalysis selection")
    data.add_argument("--start", type=_steps, default=None, help="first frame of each trajectory")
    data.add_argument("--stop", type=_steps, default=None, help="frame to stop before")
    data.add_argument("--stride", type=_positive, default=None, help="take every n-th frame")
    data.add_argument("--val-fraction", type=float, default=0.1,
                      help="share of blocks held out for validation")
    data.add_argument("--val-block", type=_positive, default=None,
                      help="consecutive frames per split block (default 100, fewer for short "
                           "trajectories; 1 for conformer files)")
    data.add_argument("--no-pbc", dest="pbc", action="store_false",
                      help="ignore unit cells (default: minimum-image neighbour lists)")
    recipe = p.add_argument_group("recipe")
    recipe.add_argument("--sigma", type=float, default=0.2, help="noise σ in Å")
    recipe.add_argument("--lr", type=float, default=5e-4, help="AdamW learning rate")
    recipe.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay")
    recipe.add_argument("--batch-size", type=_positive, default=32,
                        help="conformers per step over all processes (upstream used 200)")
    recipe.add_argument("--steps", type=_steps, default=None,
                        help="optimisation steps (default: no limit, see --epochs)")
    recipe.add_argument("--epochs", type=_positive, default=10,
                        help="most passes over the training frames")
    recipe.add_argument("--patience", type=_positive, default=None,
                        help="early stopping after this many validations without improvement")
    recipe.add_argument("--val-every", type=_positive, default=None,
                        help="steps between validations (default: once an epoch)")
    recipe.add_argument("--val-batches", type=_positive, default=None,
                        help="at most this many validation batches per validation")
    recipe.add_argument("--seed", type=int, default=0,
                        help="seed of the initialisation, batches and noise")
    engine = p.add_argument_group("engine (PyTorch Lightning)")
    engine.add_argument("--precision", default="32-true",
                        choices=("32-true", "64-true", "bf16-mixed", "16-mixed"),
                        help="Lightning precision (mixed modes are meant for GPUs)")
    engine.add_argument("--accelerator", default="auto", help="cpu, gpu or auto")
    engine.add_argument("--devices", default="1", help="devices per node (an integer or auto)")
    engine.add_argument("--num-nodes", type=_positive, default=1, help="machines (DDP)")
    engine.add_argument("--strategy", default="auto", help="auto, ddp, ddp_spawn, ...")
    engine.add_argument("--workers", type=_steps, default=0, help="data-loader processes")
    engine.add_argument("--threads", type=_positive, default=None, metavar="N",
                        help="PyTorch CPU threads per process (default: the cores this process "
                             "may use and other processes leave free, divided among --devices)")
    engine.add_argument("--checkpoint-every", type=_positive, default=50,
                        help="steps between resumable checkpoints")
    engine.add_argument("--log-every", type=_positive, default=5, help="steps between log rows")
    engine.add_argument("--nondeterministic", action="store_true",
                        help="allow PyTorch's non-deterministic kernels (faster on GPUs)")
    engine.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CKPT",
                        help="resume OUT/checkpoints/last.ckpt (or CKPT) with the same settings: "
                             "bit for bit the uninterrupted run; a finished run is left as it "
                             "is; without a checkpoint a new run starts")
    p.add_argument("--wait", action="store_true",
                   help="if another run is writing OUT, wait for it instead of failing at once")
    p.add_argument("--install", action="store_true",
                   help="copy the model card into the cache's local-models folder")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``geomfeat pretrain`` with parsed ``args``; returns the exit status."""
    from .._threads import default_threads
    from ..download import quiet_downloads
    from ..errors import GeomfeatError
    from .datasets import open_source

    try:
        from .train import PretrainConfig, PretrainInterrupted, pretrain, quiet_lightning
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in ("lightning", "lightning_fabric",
                                                  "pytorch_lightning"):
            raise
        raise GeomfeatError("geomfeat pretrain needs PyTorch Lightning: "
                            "pip install 'geomfeat[pretrain]'") from None
    quiet_lightning()
    devices: int | str = int(args.devices) if str(args.devices).isdigit() else args.devices
    config = PretrainConfig(
        architecture=args.arch, hidden_channels=args.hidden, num_layers=args.layers,
        num_rbf=args.rbf, cutoff=args.cutoff, num_heads=args.heads, init=args.init,
        sigma=args.sigma, lr=args.lr, weight_decay=args.weight_decay,
        batch_size=args.batch_size, max_steps=-1 if args.steps is None else args.steps,
        max_epochs=args.epochs, patience=args.patience, seed=args.seed,
        val_fraction=args.val_fraction, val_block=args.val_block, val_every=args.val_every,
        val_batches=args.val_batches, pbc=args.pbc, precision=args.precision,
        accelerator=args.accelerator, devices=devices, num_nodes=args.num_nodes,
        strategy=args.strategy, num_workers=args.workers,
        threads=args.threads or default_threads(divide=devices if isinstance(devices, int) else 1),
        checkpoint_every=args.checkpoint_every, log_every=args.log_every,
        deterministic=not args.nondeterministic,
    )
    if config.sigma <= 0:
        raise GeomfeatError(f"--sigma must be positive, got {config.sigma}")
    sources = [open_source(path, args.top, select=args.select, start=args.start,
                           stop=args.stop, stride=args.stride) for path in args.data]
    try:
        with quiet_downloads(args.quiet):
            result = pretrain(sources, args.output, config, name=args.name, resume=args.resume,
                              progress=not args.quiet, install=args.install, wait=args.wait)
    except PretrainInterrupted as exc:  # exit status 130 (Ctrl-C) or 143 (SIGTERM), as embed
        from ..interrupts import Terminated

        stop = Terminated() if isinstance(exc.cause, Terminated) else KeyboardInterrupt()
        stop.add_note(str(exc))
        raise stop from None
    summary = (f"{result.steps} steps, {result.epochs} epochs, train loss "
               f"{result.train_loss:.4g}, best validation loss {result.val_loss:.4g}")
    if result.already_complete:
        print(f"{result.card}: already complete ({summary}); nothing to do (more --steps or "
              "--epochs continue it)", file=sys.stderr)
    else:
        print(f"{result.card}: {summary} ({result.seconds:.0f} s)", file=sys.stderr)
    return 0
