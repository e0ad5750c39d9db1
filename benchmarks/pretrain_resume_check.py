"""Is ``pretrain --resume`` the uninterrupted run? Issue 19's scenario, at full example size.

Trains a tiny ViSNet (h16, 2 layers) on the heavy atoms of the bundled alanine-dipeptide example
(1 800 training frames, batches of 32: 57 batches an epoch) for ``--steps`` steps, once straight
and once stopped by Ctrl-C before step ``--interrupt`` and resumed (``resume="auto"``), then
compares the two output folders: the exported weights, the normaliser, the best validation
loss, ``metrics.csv`` and the model card (but its wall time).

    python benchmarks/pretrain_resume_check.py --out /tmp/resume-check --checkpoint-every 10
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import lightning as L
import torch

from geomfeat.pretrain import PretrainConfig, TrajectorySource, pretrain
from geomfeat.pretrain.train import PretrainInterrupted

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "ala2"


class _Stop(L.Callback):
    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.at:
            raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="scratch folder (replaced)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--interrupt", type=int, default=75)
    parser.add_argument("--checkpoint-every", type=int, default=10)
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    config = PretrainConfig(hidden_channels=16, num_layers=2, num_rbf=16, cutoff=5.0,
                            batch_size=32, max_steps=args.steps, threads=1,
                            checkpoint_every=args.checkpoint_every)

    def data() -> list[TrajectorySource]:
        return [TrajectorySource(EXAMPLE / "ala2.xtc", EXAMPLE / "ala2.pdb", select="heavy")]

    began = time.perf_counter()
    a = pretrain(data(), args.out / "straight", config, name="m", progress=False)
    print(f"uninterrupted run: {time.perf_counter() - began:.0f} s")
    try:
        pretrain(data(), args.out / "resumed", config, name="m", progress=False,
                 callbacks=[_Stop(args.interrupt)])
    except PretrainInterrupted as exc:
        print(exc)
    b = pretrain(data(), args.out / "resumed", config, name="m", progress=False, resume="auto")
    wa = torch.load(a.checkpoint, weights_only=True)
    wb = torch.load(b.checkpoint, weights_only=True)
    encoder = max(float((wa[k] - wb[k]).abs().max()) for k in wa
                  if k.startswith("representation_model."))
    acc = float((wa["pos_normalizer.acc_sum"] - wb["pos_normalizer.acc_sum"]).abs().max())
    print(f"max |encoder weight difference|: {encoder:.3g}")
    print(f"max |pos_normalizer.acc_sum difference|: {acc:.3g}")
    print(f"best validation loss: {a.val_loss:.6g} straight, {b.val_loss:.6g} resumed; "
          f"epochs {a.epochs} and {b.epochs}")
    same_log = (a.card.parent / "metrics.csv").read_bytes() == (
        b.card.parent / "metrics.csv").read_bytes()
    cards = [json.loads(r.card.read_text()) for r in (a, b)]
    for card in cards:
        card["training"].pop("wall_seconds_last_run")
    print(f"metrics.csv identical: {same_log}; card identical but its wall time: "
          f"{cards[0] == cards[1]}")


if __name__ == "__main__":
    main()
