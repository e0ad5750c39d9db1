"""Scaling of the denoising loss with model size: a width × depth grid at a fixed budget.

Every model of the grid is trained from scratch with :func:`geomfeat.pretrain.pretrain` on the
same data, seed and number of optimisation steps; its best validation loss is plotted against its
parameter count (encoder + head), with a power-law fit ``L = a · N^(-α)`` (least squares in
log-log). This is the question of the paper's §6 at whatever scale the machine allows.

CPU toy scale (a few minutes)::

    python benchmarks/scaling.py --widths 8 16 32 --depths 1 2 --steps 60 \\
        --out benchmarks/results --name scaling_cpu

GPU (same script)::

    python benchmarks/scaling.py --traj ../shared/data/ala2/ala2_r0.xtc \\
        --top ../shared/data/ala2/ala2.pdb --stride 5 --widths 32 64 128 256 \\
        --depths 2 4 6 --steps 5000 --batch-size 200 --accelerator gpu --name scaling_gpu

Writes ``NAME.json`` (every run's settings, parameters, losses, seconds; the fit) and
``NAME.png``; prints the JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from geomfeat.pretrain import PretrainConfig, TrajectorySource, pretrain
from geomfeat.pretrain.train import quiet_lightning

ROOT = Path(__file__).resolve().parents[1]


def power_law(params: np.ndarray, losses: np.ndarray) -> dict[str, float]:
    """Least-squares fit of ``log L = log a - α log N``; returns a, α and R² (log space)."""
    x, y = np.log(params), np.log(losses)
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (intercept + slope * x)
    r2 = 1 - residual.var() / y.var() if y.var() > 0 else float("nan")
    return {"a": float(np.exp(intercept)), "alpha": float(-slope), "r2": float(r2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--traj", default=str(ROOT / "examples/ala2/ala2.xtc"))
    p.add_argument("--top", default=str(ROOT / "examples/ala2/ala2.pdb"))
    p.add_argument("--select", default="heavy")
    p.add_argument("--stride", type=int, default=None)
    p.add_argument("--arch", default="visnet", choices=["visnet", "et", "tensornet"])
    p.add_argument("--widths", type=int, nargs="+", default=[8, 16, 32])
    p.add_argument("--depths", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rbf", type=int, default=16)
    p.add_argument("--cutoff", type=float, default=5.0)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--val-batches", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--accelerator", default="cpu")
    p.add_argument("--precision", default="32-true")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    p.add_argument("--name", default="scaling_cpu")
    args = p.parse_args()
    quiet_lightning()

    source = TrajectorySource(args.traj, args.top, select=args.select, stride=args.stride)
    runs = []
    for depth in args.depths:
        for width in args.widths:
            config = PretrainConfig(
                architecture=args.arch, hidden_channels=width, num_layers=depth,
                num_rbf=args.rbf, cutoff=args.cutoff, num_heads=min(8, max(1, width // 8)),
                batch_size=args.batch_size, lr=args.lr, max_steps=args.steps,
                max_epochs=10_000, val_every=args.steps, val_batches=args.val_batches,
                seed=args.seed, accelerator=args.accelerator, precision=args.precision,
                checkpoint_every=10**9, log_every=10, deterministic=False)
            start = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                result = pretrain([source], Path(tmp) / "run", config, name="m", progress=False)
                card = json.loads(result.card.read_text())
            runs.append({"width": width, "depth": depth, "parameters": card["parameters"],
                         "val_loss": result.val_loss, "train_loss": result.train_loss,
                         "steps": result.steps,
                         "seconds": round(time.perf_counter() - start, 1)})
            print(json.dumps(runs[-1]), flush=True)
    n = np.array([r["parameters"] for r in runs], dtype=float)
    loss = np.array([r["val_loss"] for r in runs], dtype=float)
    fit = power_law(n, loss) if len(runs) >= 2 else {}
    result = {"architecture": args.arch, "data": args.traj, "select": args.select,
              "conformers": len(source), "steps": args.steps, "batch_size": args.batch_size,
              "lr": args.lr, "seed": args.seed, "runs": runs, "power_law_fit": fit}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    _plot(runs, fit, out / f"{args.name}.png", args)
    print(json.dumps(result, indent=1))


def _plot(runs: list[dict], fit: dict, png: Path, args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for depth in sorted({r["depth"] for r in runs}):
        sel = [r for r in runs if r["depth"] == depth]
        ax.plot([r["parameters"] for r in sel], [r["val_loss"] for r in sel], "o-",
                label=f"{depth} layer(s)")
    if fit:
        n = np.geomspace(min(r["parameters"] for r in runs), max(r["parameters"] for r in runs))
        ax.plot(n, fit["a"] * n ** -fit["alpha"], "k--",
                label=f"fit α = {fit['alpha']:.3f} (R² {fit['r2']:.2f})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("encoder parameters")
    ax.set_ylabel("best validation denoising loss")
    ax.set_title(f"{args.arch}, {args.steps} steps × {args.batch_size} conformers")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
