"""Time (and optionally profile) the encoders on one batch in one process; prints JSON lines.

For each ``SYSTEM:BATCH`` and model: the time of ``GeomFeaturizer.embed_positions`` on one
batch (neighbour list, encoder, pooling, copy to the host), split into neighbour search and
encoder, best of ``--repeats`` after a warm-up, and the peak GPU memory. ``--naive`` adds the
naive PyG ViSNet of ``throughput.py`` on the same frames; ``--profile DIR`` writes the
``torch.profiler`` table of one batch (top operators by device time) per model and system.

Example (GPU)::

    python benchmarks/profile_encoders.py --device cuda --oracle .devcarry/oracle \\
        --configs t4l_heavy:64 --naive --profile /tmp/prof
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from _report import environment
from throughput import frames_for, naive_visnet

ROOT = Path(__file__).resolve().parents[1]


def _timed(fn, repeats: int, sync) -> float:
    fn()
    sync()
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - began)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--oracle", type=Path, default=ROOT.parent / "shared" / "oracle")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="+",
                        default=["visnet-denali", "et-denali", "tensornet-denali"])
    parser.add_argument("--configs", nargs="+", default=["t4l_heavy:1"])
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--naive", action="store_true")
    parser.add_argument("--compile-modes", nargs="+", default=[None],
                        choices=["auto", "always", "never"],
                        help="GEOMFEAT_COMPILE settings to time each model with, in turn")
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--profile-systems", nargs="+", default=["t4l_heavy"],
                        help="systems that --profile profiles (default: the protein)")
    parser.add_argument("--label", default="")
    parser.add_argument("--out", type=Path, help="also write the rows as one JSON report")
    args = parser.parse_args()

    from geomfeat import GeomFeaturizer
    from geomfeat.neighbors import radius_graph
    from geomfeat.trajectory import Frames, open_trajectory

    cuda = args.device.startswith("cuda")
    rows = []
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for spec in args.configs:
        system, batch = spec.split(":")
        batch = int(batch)
        pos, z = frames_for(system, batch, args.oracle)
        reader = open_trajectory(Frames(pos, z), "all")
        runs = [(m, c) for m in args.models for c in args.compile_modes]
        for model, mode in runs + ([("naive", None)] if args.naive else []):
            if mode is not None:
                os.environ["GEOMFEAT_COMPILE"] = mode
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            row = {"label": args.label, "system": system, "batch": batch, "model": model,
                   "dtype": args.dtype, "compile": os.environ.get("GEOMFEAT_COMPILE", "auto"),
                   "device": args.device}
            if model == "naive":
                net = naive_visnet(args.device)
                z_t = torch.as_tensor(z, device=args.device).repeat(batch)
                index = torch.arange(batch, device=args.device).repeat_interleave(len(z))

                shape = (batch, len(z), -1)

                @torch.inference_mode()
                def run(net=net, z_t=z_t, index=index, pos=pos, shape=shape):
                    chunk = torch.as_tensor(pos, device=args.device)
                    x, _ = net(z_t, chunk.reshape(-1, 3), index)
                    return x.view(shape).sum(1).cpu().numpy()
            else:
                featurizer = GeomFeaturizer(model, select="all", device=args.device,
                                            dtype=args.dtype, batch_size=batch)
                encoder = featurizer.encoder

                def run(featurizer=featurizer, pos=pos, reader=reader):
                    return featurizer.embed_positions(pos, reader)

                def neighbours(cutoff=encoder.cutoff, pos=pos):
                    with torch.inference_mode():
                        return radius_graph(torch.as_tensor(pos, device=args.device), cutoff)

                row["neighbours_s"] = round(_timed(neighbours, args.repeats, sync), 5)
                row["edges"] = int(neighbours().index.shape[1])
            try:
                began = time.perf_counter()
                run()
                sync()
                row["first_call_s"] = round(time.perf_counter() - began, 3)
                seconds = _timed(run, args.repeats, sync)
            except torch.OutOfMemoryError as exc:
                row["error"] = str(exc).splitlines()[0][:200]
                rows.append(row)
                print(json.dumps(row), flush=True)
                continue
            row["seconds"] = round(seconds, 5)
            row["frames_per_s"] = round(batch / seconds, 1)
            if cuda:
                row["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
            if args.profile and system in args.profile_systems:
                from torch.profiler import ProfilerActivity, profile

                activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
                with profile(activities=activities) as prof:
                    run()
                    sync()
                key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
                args.profile.mkdir(parents=True, exist_ok=True)
                name = f"{args.label}{model}_{row['compile']}_{system}_{batch}.txt"
                (args.profile / name).write_text(
                    prof.key_averages().table(sort_by=key, row_limit=25, max_name_column_width=60))
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps({**environment(args.device), "encoder_runs": rows},
                                       indent=1) + "\n")
    print(json.dumps({"done": True, "argv": sys.argv[1:]}), flush=True)


if __name__ == "__main__":
    main()
