"""Accuracy against the float64 oracle and throughput of every registered encoder; prints JSON.

Accuracy: each oracle case through the public API (``select="all", pool="atom",
features="equivariant"``) in float32 and float64, compared with ``concat(x[:, :, None], vec)``:
max, mean and 99.9th-percentile absolute error.

Throughput: ``GeomFeaturizer.transform`` on in-memory frames (coordinates → neighbour list →
encoder → graph pooling → host numpy), after a warm-up batch: frames/s, atoms/s, peak RSS and,
on CUDA, peak GPU memory. Frames are the oracle's conformations with 0.05 Å noise.

Examples
--------
CPU, small systems only::

    python benchmarks/encoders.py --oracle ../shared/oracle --cases ala2_all ala2_heavy \\
        --systems ala2_heavy:256 ala2_all:256

GPU::

    python benchmarks/encoders.py --device cuda --oracle ../shared/oracle \\
        --systems ala2_heavy:1024,16384 ala2_all:1024,8192 t4l_heavy:8,64
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _report import emit, environment

from geomfeat import GeomFeaturizer, get_model_card, list_models, load_encoder

CASES = ("ala2_all", "ala2_heavy", "t4l_heavy", "t4l_all")


def load_oracle(folder: Path, model: str) -> dict[str, np.ndarray]:
    with np.load(folder / f"{Path(get_model_card(model).file).stem}.npz") as data:
        return dict(data)


def accuracy(model: str, ref: dict, cases: list[str], device: str) -> list[dict]:
    rows = []
    for dtype in ("float32", "float64"):
        featurizer = GeomFeaturizer(model, select="all", pool="atom", features="equivariant",
                                    device=device, dtype=dtype, batch_size=1)
        for case in cases:
            expected = np.concatenate([ref[f"{case}__x"][:, :, None], ref[f"{case}__vec"]], 2)
            err = np.abs(featurizer.transform((ref[f"{case}__pos"], ref[f"{case}__z"]))
                         - expected)
            rows.append({"model": model, "case": case, "dtype": dtype,
                         "frames": int(expected.shape[0]), "atoms": int(expected.shape[1]),
                         "max_abs_err": float(err.max()), "mean_abs_err": float(err.mean()),
                         "p99.9_abs_err": float(np.quantile(err, 0.999))})
    return rows


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def throughput(model: str, ref: dict, case: str, batch: int, device: str, batches: int,
               min_seconds: float) -> dict:
    rng = np.random.default_rng(0)
    base = ref[f"{case}__pos"].astype(np.float32)
    frames = base[np.arange(batch * batches) % len(base)]
    frames = frames + rng.normal(scale=0.05, size=frames.shape).astype(np.float32)
    data = (frames, ref[f"{case}__z"])
    featurizer = GeomFeaturizer(model, select="all", device=device, batch_size=batch)
    featurizer.transform((frames[:batch], data[1]))  # warm-up: load, allocate
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    runs, start = 0, time.perf_counter()
    while True:
        featurizer.transform(data)
        runs += 1
        sync(device)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            break
    n = runs * len(frames)
    row = {"model": model, "system": case, "atoms": int(base.shape[1]), "batch": batch,
           "frames": n, "seconds": round(elapsed, 3), "frames_per_s": round(n / elapsed, 2),
           "atoms_per_s": round(n * base.shape[1] / elapsed, 1),
           "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if device.startswith("cuda"):
        row["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--oracle", type=Path, default=Path("../shared/oracle"))
    parser.add_argument("--models", nargs="+", default=list_models())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--systems", nargs="*", default=["ala2_heavy:256", "ala2_all:256"],
                        help="CASE:BATCH[,BATCH...] for throughput; none to skip")
    parser.add_argument("--batches", type=int, default=4, help="batches per timed pass")
    parser.add_argument("--min-seconds", type=float, default=3.0)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)

    report = {**environment(args.device), "models": [], "accuracy": [], "throughput": []}
    for model in args.models:
        card = get_model_card(model)
        encoder = load_encoder(model, progress=False)
        report["models"].append({"model": model, "architecture": card.architecture,
                                 "layers": card.hyperparameters.get("num_layers"),
                                 "hidden": card.hidden_channels, "cutoff_A": card.cutoff,
                                 "parameters": sum(p.numel() for p in encoder.parameters())})
        ref = load_oracle(args.oracle, model)
        report["accuracy"] += accuracy(model, ref, args.cases, args.device)
        for spec in args.systems:
            case, sizes = spec.split(":")
            for batch in map(int, sizes.split(",")):
                report["throughput"].append(throughput(model, ref, case, batch, args.device,
                                                       args.batches, args.min_seconds))
        print(json.dumps({"done": model}), file=sys.stderr, flush=True)
    emit(report, args.out)


if __name__ == "__main__":
    main()
