"""Wall time of ``embed_many`` for N trajectories: serial, and on Dask clusters of 1 and 2 workers.

Every configuration embeds the same N trajectories (cut from the bundled alanine-dipeptide
example, heavy atoms, ViSNet) into a fresh folder; the JSON gives the wall time of the
``embed_many`` call (cluster already started and warmed up with one trajectory, so every
worker has loaded its encoder; the serial run is warmed up the same way) and, separately, the
time to start the cluster. Configurations:

``serial``            this process, its default PyTorch threads;
``workers=W,threads=T``  ``local_cluster(W)`` with ``threads=T`` per task;
``...,dask-malloc``   the same with Dask's default ``MALLOC_TRIM_THRESHOLD_=65536`` in the
                      workers (what ``geomfeat.cluster.local_cluster`` avoids).

Every output is compared with the serial one (``max_abs_diff``; 0 means bit for bit).

Example::

    python benchmarks/cluster.py --trajectories 8 --frames 1000 \\
        --out benchmarks/results/cluster_cpu.json
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import emit, environment

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "ala2"


def make_trajectories(folder: Path, n: int, frames: int) -> list[Path]:
    """``n`` trajectories of ``frames`` frames cut (cyclically) from the example."""
    import mdtraj as md

    traj = md.load(EXAMPLE / "ala2.xtc", top=EXAMPLE / "ala2.pdb")
    paths = []
    for i in range(n):
        index = (np.arange(frames) + i * frames) % traj.n_frames
        path = folder / f"run{i:03d}.xtc"
        traj[index].save_xtc(str(path))
        paths.append(path)
    return paths


def compare(folder: Path, reference: Path) -> float:
    worst = 0.0
    for ref in sorted(reference.glob("*.npy")):
        got = np.load(folder / ref.name)
        worst = max(worst, float(np.abs(got - np.load(ref)).max()))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trajectories", type=int, default=8)
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--configs", nargs="+",
                        default=["serial", "workers=1,threads=2", "workers=2,threads=1",
                                 "workers=2,threads=2", "workers=2,threads=1,dask-malloc"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import dask
    import torch
    from distributed import Client

    from geomfeat import GeomFeaturizer
    from geomfeat.cluster import embed_many, local_cluster

    top = EXAMPLE / "ala2.pdb"
    work = Path(tempfile.mkdtemp(prefix="geomfeat-cluster-bench-"))
    paths = make_trajectories(work, args.trajectories, args.frames)
    reference = work / "serial"  # the serial configuration's output folder
    rows = []
    for config in args.configs:
        out = work / config.replace(",", "_").replace("=", "")
        row: dict = {"config": config}
        began = time.perf_counter()
        if config == "serial":
            featurizer = GeomFeaturizer("visnet-denali")
            embed_many(featurizer, paths[:1], top, work / "warm-serial", progress=False)
            began = time.perf_counter()
            embed_many(featurizer, paths, top, out, progress=False)
            row["threads"] = torch.get_num_threads()
        else:
            options = dict(item.split("=") if "=" in item else (item, True)
                           for item in config.split(","))
            workers, threads = int(options["workers"]), int(options["threads"])
            t0 = time.perf_counter()
            if "dask-malloc" in options:
                from distributed import LocalCluster

                with dask.config.set({"distributed.nanny.pre-spawn-environ."
                                      "MALLOC_TRIM_THRESHOLD_": 65536}):
                    cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                           host="127.0.0.1", dashboard_address=":0")
            else:
                cluster = local_cluster(workers)
            with cluster, Client(cluster) as client:
                row["cluster_start_s"] = round(time.perf_counter() - t0, 2)
                warm = work / f"warm-{out.name}"  # every worker loads its encoder
                embed_many("visnet-denali", paths[:workers], top, warm, client=client,
                           threads=threads, progress=False)
                began = time.perf_counter()
                embed_many("visnet-denali", paths, top, out, client=client, threads=threads,
                           progress=False)
                row["wall_s"] = round(time.perf_counter() - began, 2)
            row.update(workers=workers, threads=threads)
        row.setdefault("wall_s", round(time.perf_counter() - began, 2))
        frames = args.trajectories * args.frames
        row["frames_per_s"] = round(frames / row["wall_s"], 1)
        row["max_abs_diff_vs_serial"] = compare(out, reference)
        rows.append(row)
        print(row, flush=True)
    serial = next((r["wall_s"] for r in rows if r["config"] == "serial"), None)
    for row in rows:
        row["speedup_vs_serial"] = None if serial is None else round(serial / row["wall_s"], 2)
    shutil.rmtree(work)
    emit({**environment("cpu"), "trajectories": args.trajectories,
          "frames_per_trajectory": args.frames, "model": "visnet-denali", "select": "heavy",
          "cluster": rows}, args.out)


if __name__ == "__main__":
    main()
