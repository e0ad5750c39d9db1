"""Does fine-tuning the last k encoder layers beat the frozen readout? (paired, test-scored)

Thin wrapper over :mod:`geomfeat.evaluate.finetune`. For every seed and lag time, on the same
train / validation / test split (:func:`geomfeat.evaluate.make_split`, blocks):

- **frozen**: the encoder's graph embeddings (``pool="graph"``, scalar channels), standardised
  with the training part, into an :class:`~geomfeat.deeptime.MLPLobe`;
- **fine-tuned (k)**: the same lobe (same width, same initial weights) on top of the last
  ``k`` interaction layers, trained jointly (:class:`~geomfeat.evaluate.finetune.FineTuneLobe`;
  the lower layers' state is cached once); the encoder layers get ``--encoder-lr``.

Both arms use the same recipe: Adam, ``--steps-per-epoch`` mini-batches of ``--batch-size``
pairs per epoch, learning rate halved after ``--lr-patience`` epochs without a better
validation VAMP-2, early stopping after ``--patience`` (at most ``--max-epochs``), the weights
of the best validation epoch kept; the **test** part is scored once, at the end. VAMP-2
includes the constant function (at most ``--n-states``).

Output: ``NAME.json`` (settings, splits, per-seed scores, curves, timings) and a markdown table
on stdout.

Example (the numbers in docs/finetuning.md)::

    python benchmarks/finetune.py --top ../shared/data/ala2/ala2.pdb \\
        --trajs ../shared/data/ala2/ala2_r0.xtc ../shared/data/ala2/ala2_r1.xtc \\
        --stride 10 --lags 1 2 --seeds 0 1 --threads 1 --name finetune_ala2
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from itertools import pairwise
from pathlib import Path

import mdtraj as md
import numpy as np
import torch
from deeptime.decomposition.deep import VAMPNet

import geomfeat
from geomfeat import GeomFeaturizer
from geomfeat.deeptime import MLPLobe, count_parameters, width_for_budget
from geomfeat.evaluate import make_split
from geomfeat.evaluate.finetune import (
    FineTuneEncoder,
    FineTuneLobe,
    LayerCache,
    finetune_vampnet,
)
from geomfeat.evaluate.splits import pieces_of, standardizer
from geomfeat.evaluate.vampnet import fit_with_early_stopping, pairs_of, validation_score

#: geomfeat.evaluate's VAMPNetRecipe defaults (its training schedule, one restart)
LONG_RECIPE = {"batch_size": 512, "steps_per_epoch": 50, "max_epochs": 60, "patience": 12,
               "lr_patience": 4}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--top", required=True)
    p.add_argument("--trajs", nargs="+", required=True)
    p.add_argument("--model", default="visnet-denali")
    p.add_argument("--select", default="heavy")
    p.add_argument("--stride", type=int, default=1)
    p.add_argument("--k", type=int, default=1, help="trainable upper interaction layers")
    p.add_argument("--lags", type=int, nargs="+", default=[1, 2], help="frames (strided)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--n-blocks", type=int, default=10)
    p.add_argument("--n-states", type=int, default=5)
    p.add_argument("--budget", type=int, default=20000, help="lobe parameters (both arms)")
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--encoder-lr", type=float, default=1e-4)
    p.add_argument("--steps-per-epoch", type=int, default=20)
    p.add_argument("--max-epochs", type=int, default=15)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--lr-patience", type=int, default=3)
    p.add_argument("--frozen-long", action="store_true",
                   help="also train the frozen lobe with the long recipe of "
                        "geomfeat.evaluate's VAMPNetRecipe defaults (batch 512, 50 steps per "
                        "epoch, at most 60 epochs, patience 12, lr patience 4): does "
                        "fine-tuning beat a frozen lobe trained for longer?")
    p.add_argument("--frozen-only", action="store_true",
                   help="frozen arms only (embeddings from GeomFeaturizer.transform, cached "
                        "under --cache as benchmarks/alignment.py does); no layer cache")
    p.add_argument("--cache", default="/tmp/kinetics-cache")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    p.add_argument("--name", default="finetune")
    return p.parse_args(argv)


def log(*args: object) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *args, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    trajs = [md.load(p, top=args.top, stride=args.stride) for p in args.trajs]
    lengths = [t.n_frames for t in trajs]
    featurizer = GeomFeaturizer(args.model, select=args.select, device="cpu")
    cache, cache_info = None, {}
    if args.frozen_only:
        from alignment import embeddings as cached_embeddings  # benchmarks/alignment.py

        embeddings = cached_embeddings(args, trajs)
        frozen = np.concatenate(embeddings)
    else:
        t0 = time.perf_counter()
        cache = LayerCache.build(featurizer, trajs, n_trainable=args.k)
        cache_s = time.perf_counter() - t0
        log(f"cached {cache.n_frames} frames below the last {args.k} layer(s) in "
            f"{cache_s:.0f} s ({cache.nbytes / 2**20:.0f} MiB)")
        # the frozen readout: the untrained upper layers give exactly the encoder's output
        # (tests/test_finetune.py), so the frozen embeddings come from the same cache
        reference = FineTuneEncoder(featurizer, cache)
        t0 = time.perf_counter()
        with torch.no_grad():
            frozen = reference.embed(torch.arange(cache.n_frames)).numpy()
        cache_info = {"seconds": round(cache_s, 1), "MiB": round(cache.nbytes / 2**20, 1),
                      "upper_layers_forward_all_frames_s": round(time.perf_counter() - t0, 1)}
        bounds = np.cumsum([0, *lengths])
        embeddings = [frozen[a:b] for a, b in pairwise(bounds)]
        indices = cache.frame_indices()

    def lobe_factory(width: int) -> MLPLobe:
        return MLPLobe(frozen.shape[1], args.n_states, width=width, depth=args.depth)

    width = width_for_budget(lobe_factory, args.budget)
    recipe = dict(batch_size=args.batch_size, steps_per_epoch=args.steps_per_epoch,
                  max_epochs=args.max_epochs, patience=args.patience,
                  lr_patience=args.lr_patience)
    runs = []
    for seed in args.seeds:
        for lag in args.lags:
            split = make_split(lengths, n_blocks=args.n_blocks, seed=seed, min_length=lag + 1)
            parts = {p: split.part(p) for p in ("train", "validation", "test")}
            mean, sd = standardizer(pieces_of(embeddings, parts["train"]))
            emb_std = [((e - mean) / sd).astype(np.float32) for e in embeddings]
            row = {"seed": seed, "lag": lag, "split": split.as_dict()}

            # frozen arms
            torch.manual_seed(seed)
            init = {k: v.clone() for k, v in lobe_factory(width).state_dict().items()}
            data = {p: pairs_of(pieces_of(emb_std, parts[p]), lag) for p in parts}
            arms = {"frozen": recipe, "frozen_long": LONG_RECIPE}
            for arm in ("frozen", "frozen_long") if args.frozen_long else ("frozen",):
                lobe = lobe_factory(width)
                lobe.load_state_dict(init)
                vnet = VAMPNet(lobe=lobe, learning_rate=args.lr)
                res = fit_with_early_stopping(vnet, lobe, data["train"], data["validation"],
                                              seed=seed, **arms[arm])
                res["test_vamp2"] = validation_score(vnet, lobe, data["test"])
                res["params"] = count_parameters(lobe)
                row[arm] = res
                log(f"seed {seed} lag {lag} {arm}: val {res['val_vamp2']:.3f} test "
                    f"{res['test_vamp2']:.3f} ({res['epochs']} epochs, {res['seconds']:.0f} s)")
            if args.frozen_only:
                runs.append(row)
                write(args, {"partial": True, "settings": vars(args), "runs": runs})
                continue

            # fine-tuned arm: same lobe initialisation, same split, same recipe
            head = FineTuneEncoder(featurizer, cache)
            head.fit_standardization(pieces_of(indices, parts["train"]))
            lobe = lobe_factory(width)
            lobe.load_state_dict(init)
            module = FineTuneLobe(head, lobe)
            vnet = finetune_vampnet(module, learning_rate=args.lr,
                                    encoder_learning_rate=args.encoder_lr)
            data = {p: pairs_of(pieces_of(indices, parts[p]), lag) for p in parts}
            res = fit_with_early_stopping(vnet, module, data["train"], data["validation"],
                                          seed=seed, eval_batch_size=8192, **recipe)
            res["test_vamp2"] = validation_score(vnet, module, data["test"], batch_size=2048)
            res["params"] = count_parameters(lobe)
            res["encoder_params"] = sum(p.numel() for p in head.encoder_parameters())
            row["finetuned"] = res
            log(f"seed {seed} lag {lag} fine-tuned k={args.k}: val {res['val_vamp2']:.3f} "
                f"test {res['test_vamp2']:.3f} ({res['epochs']} epochs, {res['seconds']:.0f} s)")
            runs.append(row)
            write(args, {"partial": True, "settings": vars(args), "runs": runs})

    summary = {}
    for lag in args.lags:
        rows = [r for r in runs if r["lag"] == lag]
        summary[str(lag)] = {arm: mean_sd([r[arm]["test_vamp2"] for r in rows])
                             for arm in ("frozen", "frozen_long", "finetuned") if arm in rows[0]}
        if "finetuned" in rows[0]:
            f = np.array([r["frozen"]["test_vamp2"] for r in rows])
            t = np.array([r["finetuned"]["test_vamp2"] for r in rows])
            summary[str(lag)].update(paired_difference=mean_sd(t - f),
                                     finetuned_wins=int((t > f).sum()))
        summary[str(lag)]["n"] = len(rows)
    dt_ps = float(trajs[0].timestep)
    report = {
        "system": Path(args.top).stem, "model": args.model, "select": args.select,
        "k": args.k, "frames": lengths, "stride": args.stride, "dt_ps": dt_ps,
        "settings": vars(args), "lobe_width": width,
        "command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]),
        "host": {"cpus": torch.get_num_threads(), "machine": platform.machine()},
        "geomfeat": geomfeat.__version__,
        "cache": cache_info, "long_recipe": LONG_RECIPE,
        "summary_test_vamp2": summary, "runs": runs,
    }
    write(args, report)
    print(markdown(report))
    return report


def mean_sd(values) -> list[float]:
    a = np.asarray(values, float)
    return [float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0]


def write(args: argparse.Namespace, report: dict) -> None:
    """``NAME.json`` (rewritten after every run, so an interrupted run keeps what it did)."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f"{args.name}.json.tmp"
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(out / f"{args.name}.json")


def markdown(report: dict) -> str:
    """Test VAMP-2 per lag, mean ± sd over seeds, and seconds per training step, per arm."""
    names = {"frozen": "frozen", "frozen_long": "frozen, long recipe",
             "finetuned": f"fine-tuned (k={report['k']})"}
    lines = ["| lag | arm | test VAMP-2 | per seed | s/step | paired diff. vs frozen | wins |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for lag, s in report["summary_test_vamp2"].items():
        rows = [r for r in report["runs"] if str(r["lag"]) == lag]
        for arm, name in names.items():
            if arm not in s:
                continue
            per_seed = ", ".join(f"{r[arm]['test_vamp2']:.3f}" for r in rows)
            step = np.mean([r[arm]["seconds_per_step"] for r in rows])
            diff = wins = ""
            if arm == "finetuned":
                diff = f"{s['paired_difference'][0]:+.3f} ± {s['paired_difference'][1]:.3f}"
                wins = f"{s['finetuned_wins']}/{s['n']}"
            lines.append(f"| {int(lag) * report['dt_ps']:g} ps | {name} | {s[arm][0]:.3f} ± "
                         f"{s[arm][1]:.3f} | {per_seed} | {step:.3f} | {diff} | {wins} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
