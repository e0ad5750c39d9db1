"""Steps per second of denoising pre-training (ViSNet h64 by default) through the real path.

Runs :func:`geomfeat.pretrain.pretrain` (Lightning) on the alanine-dipeptide example frames and
times the optimisation steps after a warm-up with a callback; stops after ``--seconds`` of timed
steps or ``--steps`` steps. Prints JSON (device, settings, steps/s, conformers/s, peak memory).

    python benchmarks/pretrain_speed.py --device cuda                # one GPU, < 60 s
    python benchmarks/pretrain_speed.py --device cuda --precision bf16-mixed
    python benchmarks/pretrain_speed.py --device cpu --seconds 20
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

from geomfeat.pretrain import PretrainConfig, TrajectorySource, pretrain
from geomfeat.pretrain.train import quiet_lightning

ROOT = Path(__file__).resolve().parents[1]


class StepTimer(L.Callback):
    """Times optimisation steps after ``warmup`` and stops the run after ``seconds``."""

    def __init__(self, warmup: int, seconds: float) -> None:
        self.warmup, self.seconds = warmup, seconds
        self.start: float | None = None
        self.steps = 0
        self.elapsed = 0.0

    def _sync(self, trainer: L.Trainer) -> None:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.warmup:
            self._sync(trainer)
            self.start = time.perf_counter()
            if trainer.strategy.root_device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
        elif self.start is not None:
            self._sync(trainer)
            self.steps = trainer.global_step - self.warmup
            self.elapsed = time.perf_counter() - self.start
            if self.elapsed >= self.seconds:
                trainer.should_stop = True


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--arch", default="visnet")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--rbf", type=int, default=64)
    p.add_argument("--cutoff", type=float, default=7.5)
    p.add_argument("--batch-size", type=int, default=200,
                   help="conformers per step (upstream: 200)")
    p.add_argument("--select", default="all", help="'all' (22 atoms) or 'heavy' (10)")
    p.add_argument("--precision", default="32-true")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--steps", type=int, default=2000, help="at most this many timed steps")
    p.add_argument("--seconds", type=float, default=25.0, help="time budget of timed steps")
    p.add_argument("--deterministic", action="store_true")
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("pretrain_speed.py: error: --device cuda but no CUDA device")
    quiet_lightning()

    source = TrajectorySource(ROOT / "examples/ala2/ala2.xtc", ROOT / "examples/ala2/ala2.pdb",
                              select=args.select)
    config = PretrainConfig(
        architecture=args.arch, hidden_channels=args.hidden, num_layers=args.layers,
        num_rbf=args.rbf, cutoff=args.cutoff, batch_size=args.batch_size,
        max_steps=args.warmup + args.steps, max_epochs=10_000, val_fraction=0,
        precision=args.precision, accelerator="gpu" if args.device == "cuda" else "cpu",
        checkpoint_every=10**9, log_every=50, deterministic=args.deterministic)
    timer = StepTimer(args.warmup, args.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        pretrain([source], tmp, config, name="speed", progress=False, callbacks=[timer])
    atoms = source.reader.n_atoms
    rate = timer.steps / timer.elapsed if timer.elapsed else float("nan")
    out = {
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "torch_threads": torch.get_num_threads(),
        "architecture": args.arch, "hidden": args.hidden, "layers": args.layers,
        "rbf": args.rbf, "cutoff_A": args.cutoff, "precision": args.precision,
        "batch_conformers": args.batch_size, "atoms_per_conformer": atoms,
        "deterministic": args.deterministic,
        "timed_steps": timer.steps, "seconds": round(timer.elapsed, 2),
        "steps_per_s": round(rate, 3),
        "conformers_per_s": round(rate * args.batch_size, 1),
        "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
        if args.device == "cuda" else None,
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
