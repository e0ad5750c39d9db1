"""Throughput and memory of geomfeat against a naive baseline and mdtraj distances; prints JSON.

Every measurement runs in a fresh child process, so each peak RSS is its own.

Methods, all on the same in-memory frames (coordinates → features, graph pooling):

``geomfeat``
    ``GeomFeaturizer(model, select="all", batch_size=B).transform(Frames(...))``.
``naive``
    PyTorch Geometric's ``ViSNet`` representation block with the same weights and its
    ``radius_graph`` replaced by a dense all-pairs search done frame by frame (what code without
    torch-cluster typically does), sum over atoms.
``distances``
    ``mdtraj.compute_distances`` on all atom pairs of the selection (the hand-made baseline).

Systems: alanine dipeptide heavy atoms (10) and all atoms (22) from the bundled example
trajectory, and T4 lysozyme heavy atoms (1290, ``t4l_heavy``) or the first 44 of them
(residues 1-5, a pentapeptide-sized fragment, ``t4l_n44``) from the oracle's two frames with
0.05 Å noise.

``--interleave R`` times geomfeat and the naive baseline in turns, R times each, in one
process per model and configuration and reports the median of the R ratios (robust to load
on a shared machine). ``--compile`` sets ``GEOMFEAT_COMPILE`` for the runs.
``--pipeline T:F:B`` times the encoder alone against reading alone and the whole
``geomfeat embed`` command on T alanine-dipeptide XTC files of F frames (batch B).

``--rss-trajectory`` additionally runs ``geomfeat embed`` on the first N frames of a trajectory
for each N of ``--rss-frames`` and reports each child's peak RSS (streaming target: flat in N).

Example (CPU)::

    python benchmarks/throughput.py --oracle ../shared/oracle --configs ala2_heavy:256 \\
        ala2_all:256 t4l_heavy:1 --out benchmarks/results/throughput_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import emit, environment

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "ala2"


def frames_for(system: str, n_frames: int, oracle: Path) -> tuple[np.ndarray, np.ndarray]:
    """(positions (F, N, 3) in Å float32, atomic numbers (N,)) of a benchmark system."""
    if system.startswith("ala2"):
        import MDAnalysis as mda

        from geomfeat.trajectory import open_trajectory

        universe = mda.Universe(str(EXAMPLE / "ala2.pdb"), str(EXAMPLE / "ala2.xtc"))
        reader = open_trajectory(universe, "heavy" if system == "ala2_heavy" else "all")
        frames = reader.frame_indices()
        pos = next(reader.iter_batches(len(frames), frames)).positions
        return pos[np.arange(n_frames) % len(pos)].astype(np.float32), reader.atomic_numbers
    with np.load(oracle / "visnet_l6_h64_rbf64_r75.npz") as data:
        if system == "t4l_n44":  # first 44 heavy atoms: residues 1-5 (MNIFE) of T4 lysozyme
            base, z = data["t4l_heavy__pos"][:, :44], data["t4l_heavy__z"][:44]
        else:
            base, z = data[f"{system}__pos"], data[f"{system}__z"]
    noise = np.random.default_rng(0).normal(scale=0.05, size=(n_frames, *base.shape[1:]))
    return (base[np.arange(n_frames) % len(base)] + noise).astype(np.float32), z


def naive_visnet(device: str):
    """PyG's ViSNet block with the visnet-denali weights and a per-frame dense neighbour list."""
    import torch
    from torch_geometric.nn.models import ViSNet

    from geomfeat import fetch_weights

    class DenseDistance(torch.nn.Module):
        def forward(self, pos, batch):
            index, vectors = [], []
            for b in torch.unique(batch):
                nodes = (batch == b).nonzero().flatten()
                p = pos[nodes]
                within = torch.cdist(p, p) <= 7.5
                target, source = within.nonzero(as_tuple=True)
                index.append(torch.stack([nodes[source], nodes[target]]))
            edge_index = torch.cat(index, dim=1)
            vec = pos[edge_index[0]] - pos[edge_index[1]]
            loop = edge_index[0] == edge_index[1]
            weight = torch.where(loop, 0.0, vec.norm(dim=-1))
            del vectors
            return edge_index, weight, vec

    model = ViSNet(hidden_channels=64, num_rbf=64, cutoff=7.5, num_layers=6,
                   vecnorm_type="max_min", trainable_vecnorm=True).representation_model
    state = torch.load(fetch_weights("visnet-denali", progress=False), map_location="cpu",
                       weights_only=True)
    model.load_state_dict({k[len("representation_model."):]: v for k, v in state.items()
                           if k.startswith("representation_model.")})
    model.distance = DenseDistance()
    return model.eval().to(device)


def worker(method: str, system: str, batch: int, device: str, model: str, oracle: Path,
           min_seconds: float) -> dict:
    import resource

    import torch

    n_frames = batch * max(1, 2048 // batch if system.startswith("ala2") else 2)
    pos, z = frames_for(system, n_frames, oracle)
    if method == "geomfeat":
        from geomfeat import GeomFeaturizer
        from geomfeat.trajectory import Frames

        featurizer = GeomFeaturizer(model, select="all", batch_size=batch, device=device)

        def run(p):
            return featurizer.transform(Frames(p, z))
    elif method == "naive":
        net = naive_visnet(device)
        z_t = torch.as_tensor(z, device=device)

        @torch.inference_mode()
        def run(p):
            out = []
            for lo in range(0, len(p), batch):
                chunk = torch.as_tensor(p[lo : lo + batch], device=device)
                b = len(chunk)
                index = torch.arange(b, device=device).repeat_interleave(len(z))
                x, _ = net(z_t.repeat(b), chunk.reshape(-1, 3), index)
                out.append(x.view(b, len(z), -1).sum(1).cpu().numpy())
            return np.concatenate(out)
    elif method == "distances":
        import itertools

        import mdtraj as md

        top = md.Topology()
        chain = top.add_chain()
        residue = top.add_residue("MOL", chain)
        for number in z:
            top.add_atom("X", md.element.Element.getByAtomicNumber(int(number)), residue)
        pairs = np.array(list(itertools.combinations(range(len(z)), 2)))

        def run(p):
            return md.compute_distances(md.Trajectory(p / 10.0, top), pairs, periodic=False)
    else:
        raise ValueError(method)
    run(pos[:batch])  # warm-up
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    sync()
    runs, start = 0, time.perf_counter()
    while True:
        run(pos)
        sync()
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            break
    done = runs * len(pos)
    row = {"method": method, "model": model if method == "geomfeat" else
           ("visnet-denali" if method == "naive" else None), "system": system,
           "atoms": len(z), "batch": batch, "device": device, "frames": done,
           "seconds": round(elapsed, 3), "frames_per_s": round(done / elapsed, 2),
           "atoms_per_s": round(done * len(z) / elapsed, 1),
           "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if device.startswith("cuda"):
        row["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return row


def interleaved(system: str, batch: int, device: str, model: str, oracle: Path,
                repeats: int) -> dict:
    """geomfeat and the naive baseline timed in turns in one process; median of the ratios.

    Both embed the same ``batch`` frames (graph pooling, host numpy) ``repeats`` times each,
    alternating, after one warm-up each: load on a shared machine then hits both alike.
    """
    import torch

    from geomfeat import GeomFeaturizer
    from geomfeat.trajectory import Frames

    pos, z = frames_for(system, batch, oracle)
    featurizer = GeomFeaturizer(model, select="all", batch_size=batch, device=device)
    net = naive_visnet(device)
    z_t = torch.as_tensor(z, device=device).repeat(batch)
    index = torch.arange(batch, device=device).repeat_interleave(len(z))
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    @torch.inference_mode()
    def naive():
        x, _ = net(z_t, torch.as_tensor(pos, device=device).reshape(-1, 3), index)
        return x.view(batch, len(z), -1).sum(1).cpu().numpy()

    def ours():
        return featurizer.transform(Frames(pos, z))

    began = time.perf_counter()
    ours()
    first = time.perf_counter() - began
    naive()
    times: dict[str, list[float]] = {"geomfeat": [], "naive": []}
    for _ in range(repeats):
        for name, run in (("geomfeat", ours), ("naive", naive)):
            sync()
            began = time.perf_counter()
            run()
            sync()
            times[name].append(time.perf_counter() - began)
    ratios = [n / g for g, n in zip(times["geomfeat"], times["naive"], strict=True)]
    return {"method": "interleaved", "model": model, "system": system, "atoms": len(z),
            "batch": batch, "device": device, "repeats": repeats,
            "compile": os.environ.get("GEOMFEAT_COMPILE", "auto"),
            "first_call_s": round(first, 2),
            "geomfeat_frames_per_s": [round(batch / t, 1) for t in times["geomfeat"]],
            "naive_frames_per_s": [round(batch / t, 1) for t in times["naive"]],
            "ratio_median": round(float(np.median(ratios)), 3),
            "ratio_min": round(min(ratios), 3), "ratio_max": round(max(ratios), 3)}


def pipeline(n_trajectories: int, n_frames: int, device: str, model: str, batch: int) -> dict:
    """Encoder alone vs reading alone vs ``geomfeat embed`` on a folder of XTC files.

    The files are the bundled alanine-dipeptide example tiled to ``n_frames`` frames each,
    heavy atoms. ``encoder_frames_per_s``: ``embed_positions`` on frames already in memory;
    ``read_frames_per_s``: reading the selection alone; ``transform_*``: reading and encoding
    in this process with the read-ahead thread (``prefetch``) and without (``inline``);
    ``command_frames_per_s``: the whole ``geomfeat embed`` command (process start, model load,
    reading, encoding, writing) on the folder; ``startup_seconds``: the same command on the
    first frame of the first file (process start, imports, model load: the fixed cost), so
    that ``command_seconds - startup_seconds`` is what the frames and files cost.
    """
    import MDAnalysis as mda

    import geomfeat.featurizer as featurizer_module
    from geomfeat import GeomFeaturizer

    row: dict = {"method": "pipeline", "model": model, "device": device, "batch": batch,
                 "trajectories": n_trajectories, "frames_each": n_frames,
                 "compile": os.environ.get("GEOMFEAT_COMPILE", "auto")}
    total = n_trajectories * n_frames
    sync = (lambda: __import__("torch").cuda.synchronize()) if device.startswith("cuda") \
        else (lambda: None)
    with tempfile.TemporaryDirectory() as tmp:
        top = str(EXAMPLE / "ala2.pdb")
        source = mda.Universe(top, str(EXAMPLE / "ala2.xtc"))
        paths = []
        for k in range(n_trajectories):
            path = f"{tmp}/t{k:03d}.xtc"
            with mda.Writer(path, source.atoms.n_atoms) as writer:
                for i in range(n_frames):
                    source.trajectory[(i + 97 * k) % len(source.trajectory)]
                    writer.write(source.atoms)
            paths.append(path)
        featurizer = GeomFeaturizer(model, batch_size=batch, device=device)
        universes = [mda.Universe(top, p) for p in paths]
        readers = [featurizer.reader(u) for u in universes]
        began = time.perf_counter()
        frames = [next(r.iter_batches(n_frames, r.frame_indices())).positions for r in readers]
        row["read_frames_per_s"] = round(total / (time.perf_counter() - began), 1)
        print(json.dumps(row), file=sys.stderr, flush=True)
        featurizer.embed_positions(frames[0][:batch], readers[0])  # warm-up
        sync()
        began = time.perf_counter()
        for reader, pos in zip(readers, frames, strict=True):
            for lo in range(0, n_frames, batch):
                featurizer.embed_positions(pos[lo : lo + batch], reader)
        sync()
        row["encoder_frames_per_s"] = round(total / (time.perf_counter() - began), 1)
        print(json.dumps(row), file=sys.stderr, flush=True)
        for name, depth in (("inline", 0), ("prefetch", 1)):
            featurizer_module.PREFETCH_BATCHES = depth
            began = time.perf_counter()
            for universe in universes:
                featurizer.transform(universe)
            sync()
            row[f"transform_{name}_frames_per_s"] = round(
                total / (time.perf_counter() - began), 1)
            print(json.dumps(row), file=sys.stderr, flush=True)
        featurizer_module.PREFETCH_BATCHES = 1
        options = ["--model", model, "--device", device, "--batch-size", str(batch), "-q"]
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "geomfeat", "embed", paths[0], top, "--stop", "1",
                        "-o", f"{tmp}/one.npy", *options], capture_output=True, check=True)
        row["startup_seconds"] = round(time.perf_counter() - began, 2)
        began = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "geomfeat", "embed", *paths, "--top", top,
                               "-o", f"{tmp}/out", *options], capture_output=True, text=True)
        row["command_seconds"] = round(time.perf_counter() - began, 2)
        row["command_after_startup_frames_per_s"] = round(
            total / max(row["command_seconds"] - row["startup_seconds"], 1e-9), 1)
        row["command_exit_status"] = done.returncode
        if done.returncode:
            row["command_error"] = done.stderr.strip().splitlines()[-1:]
        row["command_frames_per_s"] = round(total / row["command_seconds"], 1)
    return row


def child(args: list[str], flag: str = "--worker") -> dict:
    out = subprocess.run([sys.executable, __file__, flag, *args], stdout=subprocess.PIPE,
                         stderr=None if flag == "--pipeline-worker" else subprocess.PIPE,
                         text=True)
    if out.returncode:
        last = (out.stderr or "child failed; see its output above").strip().splitlines()[-1]
        return {"error": last, "args": args}
    return json.loads(out.stdout.strip().splitlines()[-1])


def embed_rss(trajectory: Path, topology: Path, n_frames: int, device: str) -> dict:
    """Peak RSS (MiB) of ``geomfeat embed`` on the first ``n_frames`` frames of a trajectory."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "geomfeat", "embed", str(trajectory),
                                 str(topology), "-o", f"{tmp}/e.npy", "--stop", str(n_frames),
                                 "--device", device, "-q"])
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        shape = np.load(f"{tmp}/e.npy", mmap_mode="r").shape if status == 0 else None
    return {"frames": n_frames, "exit_status": status, "shape": shape, "seconds": round(elapsed, 1),
            "frames_per_s": round(n_frames / elapsed, 1),
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=7, help=argparse.SUPPRESS)
    parser.add_argument("--interleaved-worker", nargs=6, help=argparse.SUPPRESS)
    parser.add_argument("--pipeline-worker", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--oracle", type=Path, default=ROOT.parent / "shared" / "oracle")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="+",
                        default=["visnet-denali", "et-denali", "tensornet-denali"])
    parser.add_argument("--configs", nargs="*", default=["ala2_heavy:256", "ala2_all:256"],
                        help="SYSTEM:BATCH[,BATCH...] (ala2_heavy, ala2_all, t4l_n44, t4l_heavy)")
    parser.add_argument("--methods", nargs="+", default=["geomfeat", "naive", "distances"])
    parser.add_argument("--min-seconds", type=float, default=3.0)
    parser.add_argument("--interleave", type=int, default=0, metavar="REPEATS",
                        help="instead of separate runs: geomfeat and naive in turns in one "
                             "process, REPEATS times each, per model and configuration")
    parser.add_argument("--threads", type=int,
                        help="PyTorch threads of the runs (OMP_NUM_THREADS; default: as set)")
    parser.add_argument("--compile", choices=["auto", "always", "never"],
                        help="GEOMFEAT_COMPILE for the runs (default: as set, else auto)")
    parser.add_argument("--pipeline", metavar="TRAJECTORIES:FRAMES:BATCH",
                        help="also time encoder alone vs geomfeat embed on a folder of that "
                             "many alanine-dipeptide XTC files (first model)")
    parser.add_argument("--rss-trajectory", type=Path)
    parser.add_argument("--rss-topology", type=Path)
    parser.add_argument("--rss-frames", type=int, nargs="*", default=[20_000, 200_000])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.compile:
        os.environ["GEOMFEAT_COMPILE"] = args.compile  # inherited by the children
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    if args.interleaved_worker:
        system, batch, device, model, oracle, repeats = args.interleaved_worker
        print(json.dumps(interleaved(system, int(batch), device, model, Path(oracle),
                                     int(repeats))))
        return
    if args.pipeline_worker:
        n_traj, n_frames, device, model, batch = args.pipeline_worker
        print(json.dumps(pipeline(int(n_traj), int(n_frames), device, model, int(batch))))
        return
    if args.worker:
        method, system, batch, device, model, oracle, seconds = args.worker
        print(json.dumps(worker(method, system, int(batch), device, model, Path(oracle),
                                float(seconds))))
        return

    report = {**environment(args.device), "compile": os.environ.get("GEOMFEAT_COMPILE", "auto"),
              "runs": [], "embed_rss": [], "pipeline": []}
    for spec in args.configs if args.interleave else []:
        system, sizes = spec.split(":")
        for batch in sizes.split(","):
            for model in args.models:
                row = child([system, batch, args.device, model, str(args.oracle),
                             str(args.interleave)], "--interleaved-worker")
                report["runs"].append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    for spec in [] if args.interleave else args.configs:
        system, sizes = spec.split(":")
        for batch in sizes.split(","):
            for method in args.methods:
                if method == "distances" and args.device != "cpu":
                    continue
                models = args.models if method == "geomfeat" else ["-"]
                for model in models:
                    row = child([method, system, batch, args.device, model, str(args.oracle),
                                 str(args.min_seconds)])
                    report["runs"].append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
    if args.pipeline:
        n_traj, n_frames, batch = args.pipeline.split(":")
        row = child([n_traj, n_frames, args.device, args.models[0], batch], "--pipeline-worker")
        report["pipeline"].append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    if args.rss_trajectory:
        for n in args.rss_frames:
            row = embed_rss(args.rss_trajectory, args.rss_topology, n, args.device)
            report["embed_rss"].append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    emit(report, args.out)


if __name__ == "__main__":
    main()
