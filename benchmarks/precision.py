"""Error and speed of geomfeat's precision options against the float64 reference; prints JSON.

For every encoder, every oracle case and every ``dtype`` option that runs on the device
(``float32``, ``bfloat16``, ``float16``, and ``tf32`` on CUDA), the oracle's first frame is
embedded through the public API:

* per-atom error: ``GeomFeaturizer(dtype=..., select="all", pool="atom",
  features="equivariant")`` against the oracle's ``x`` and ``vec`` (max, mean, 99th
  percentile of the absolute error);
* graph error: the summed scalar features against the oracle's sum over atoms (max absolute
  error, and relative to the largest reference entry);
* speed: frames/s embedding ``--batch`` copies of the frame (graph pooling), best of
  ``--repeats``, in the same process for every option so the ratios are side by side.

Examples::

    python benchmarks/precision.py --oracle ../shared/oracle \
        --out benchmarks/results/precision_cpu.json
    python benchmarks/precision.py --oracle ../shared/oracle --device cuda --batch ala2_all:4096 \\
        ala2_heavy:8192 t4l_heavy:64 --out benchmarks/results/precision_gpu.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _report import emit, environment

CASES = ("ala2_heavy", "ala2_all", "t4l_heavy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--oracle", type=Path, default=Path("../shared/oracle"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="+",
                        default=["visnet-denali", "et-denali", "tensornet-denali"])
    parser.add_argument("--batch", nargs="+", default=["ala2_heavy:256", "ala2_all:256",
                                                       "t4l_heavy:1"],
                        help="CASE:FRAMES per timed batch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import torch

    from geomfeat import GeomFeaturizer
    from geomfeat.registry import get_model_card

    batches = {case: int(n) for case, n in (item.split(":") for item in args.batch)}
    options = ["float32", "bfloat16", "float16"]
    if args.device.startswith("cuda"):
        options.insert(1, "tf32")
    rows = []
    for model in args.models:
        stem = Path(get_model_card(model).file).stem
        with np.load(args.oracle / f"{stem}.npz") as data:
            ref = dict(data)
        for case in batches:
            pos = ref[f"{case}__pos"][:1].astype(np.float64)
            z = ref[f"{case}__z"]
            expected = np.concatenate([ref[f"{case}__x"][:1, :, None],
                                       ref[f"{case}__vec"][:1]], axis=2)
            graph_ref = ref[f"{case}__x"][:1].sum(axis=1)
            many = np.repeat(pos, batches[case], axis=0)
            for dtype in options:
                common = dict(select="all", dtype=dtype, device=args.device)
                atoms = GeomFeaturizer(model, pool="atom", features="equivariant",
                                       batch_size=1, **common).transform((pos, z))
                error = np.abs(atoms - expected)
                featurizer = GeomFeaturizer(model, batch_size=batches[case], **common)
                graph = featurizer.transform((pos, z))
                featurizer.transform((many[:1], z))  # warm-up
                best = float("inf")
                for _ in range(args.repeats):
                    if args.device.startswith("cuda"):
                        torch.cuda.synchronize()
                    began = time.perf_counter()
                    featurizer.transform((many, z))
                    if args.device.startswith("cuda"):
                        torch.cuda.synchronize()
                    best = min(best, time.perf_counter() - began)
                graph_error = float(np.abs(graph - graph_ref).max())
                row = {
                    "model": model, "case": case, "dtype": dtype, "atoms": int(z.shape[0]),
                    "atom_max": float(error.max()), "atom_mean": float(error.mean()),
                    "atom_p99": float(np.percentile(error, 99)),
                    "graph_max": graph_error,
                    "graph_rel": graph_error / float(np.abs(graph_ref).max()),
                    "batch": batches[case], "frames_per_s": round(batches[case] / best, 2),
                }
                rows.append(row)
                print({k: row[k] for k in ("model", "case", "dtype", "atom_max",
                                           "frames_per_s")}, flush=True)
    for row in rows:
        base = next(r for r in rows if r["model"] == row["model"] and r["case"] == row["case"]
                    and r["dtype"] == "float32")
        row["speed_vs_float32"] = round(row["frames_per_s"] / base["frames_per_s"], 2)
    emit({**environment(args.device), "precision": rows}, args.out)


if __name__ == "__main__":
    main()
