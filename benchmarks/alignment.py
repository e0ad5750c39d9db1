"""Do the slowest components of the embeddings recover φ/ψ? (alanine dipeptide by default)

Thin wrapper over :func:`geomfeat.evaluate.alignment`: embeds the trajectories with a frozen
encoder (graph pooling), fits TICA on the embeddings, and reports the canonical correlations of
the ``--n-components`` slowest components with

- ``torsions``: sin and cos of every backbone φ and ψ;
- ``states``: indicators of the three Ramachandran basins of the first φ/ψ pair, α_L (φ > 0),
  α_R (φ < 0, -120° < ψ < 50°) and β/PPII (the rest) -- the slow process of alanine dipeptide
  is the rare α_L excursion, which is far from linear in sin/cos φ;
- ``torsions+states``: both;
- ``distances``: all pairwise distances of the heavy atoms (nm).

For reference the same is done with TICA fitted on the heavy-atom distances instead of the
embeddings (do distances' own slow components recover φ/ψ as well?).

Outputs ``NAME.json`` (settings, every number) and ``NAME.png`` (correlation maps, canonical
correlations, Ramachandran plots coloured by the slow components). Embeddings are cached as
``.npy`` under ``--cache``.

Example (the numbers in docs/interpretation.md)::

    python benchmarks/alignment.py --top ../shared/data/ala2/ala2.pdb \\
        --trajs ../shared/data/ala2/ala2_r0.xtc ../shared/data/ala2/ala2_r1.xtc \\
        --stride 10 --lag 1 --name alignment_ala2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from itertools import pairwise
from pathlib import Path

import matplotlib
import mdtraj as md
import numpy as np
import torch

import geomfeat
from geomfeat import GeomFeaturizer
from geomfeat.evaluate import alignment, plot_alignment

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--top", required=True)
    p.add_argument("--trajs", nargs="+", required=True)
    p.add_argument("--model", default="visnet-denali")
    p.add_argument("--select", default="heavy")
    p.add_argument("--stride", type=int, default=1)
    p.add_argument("--lag", type=int, default=1, help="TICA lag time in (strided) frames")
    p.add_argument("--n-components", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--cache", default=os.environ.get("KINETICS_CACHE", "/tmp/kinetics-cache"))
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    p.add_argument("--name", default="alignment")
    return p.parse_args(argv)


def log(*args: object) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *args, file=sys.stderr, flush=True)


def embeddings(args: argparse.Namespace, trajs: list[md.Trajectory]) -> list[np.ndarray]:
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    featurizer = GeomFeaturizer(args.model, select=args.select)
    out = []
    for path, traj in zip(args.trajs, trajs, strict=True):
        stat = os.stat(path)
        key = hashlib.sha1(json.dumps([str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns,
                                       args.model, args.select, args.stride,
                                       geomfeat.__version__]).encode()).hexdigest()[:12]
        f = cache / f"align_{Path(path).stem}_{args.model}_{key}.npy"
        if not f.exists():
            t0 = time.perf_counter()
            emb = featurizer.transform(traj)
            log(f"embedded {path}: {emb.shape} in {time.perf_counter() - t0:.0f} s")
            np.save(f.with_suffix(".tmp.npy"), emb)
            f.with_suffix(".tmp.npy").replace(f)
        out.append(np.load(f))
    return out


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    trajs = [md.load(p, top=args.top, stride=args.stride) for p in args.trajs]
    phi = [md.compute_phi(t)[1] for t in trajs]
    psi = [md.compute_psi(t)[1] for t in trajs]
    if phi[0].shape[1] == 0:
        raise SystemExit("the topology has no backbone φ/ψ")
    n_phi, n_psi = phi[0].shape[1], psi[0].shape[1]
    angles = [np.concatenate([a, b], 1) for a, b in zip(phi, psi, strict=True)]
    names = [f"φ{i + 1}" for i in range(n_phi)] + [f"ψ{i + 1}" for i in range(n_psi)]
    if n_phi == 1 and n_psi == 1:
        names = ["φ", "ψ"]
    torsions = [np.concatenate([np.sin(a), np.cos(a)], 1) for a in angles]
    torsion_names = [f"sin {n}" for n in names] + [f"cos {n}" for n in names]
    phi0, psi0 = [np.degrees(np.concatenate(a)[:, 0]) for a in (phi, psi)]
    alpha_l = phi0 > 0
    alpha_r = ~alpha_l & (psi0 > -120) & (psi0 < 50)
    bounds = np.cumsum([0, *[t.n_frames for t in trajs]])
    onehot = np.stack([alpha_l, alpha_r, ~alpha_l & ~alpha_r], 1).astype(np.float64)
    states = [onehot[a:b] for a, b in pairwise(bounds)]
    state_names = ["α_L", "α_R", "β/PPII"]
    both = [np.concatenate([t, s], 1) for t, s in zip(torsions, states, strict=True)]
    heavy = [a.index for a in trajs[0].topology.atoms if a.element.number != 1]
    pairs = np.array([(i, j) for k, i in enumerate(heavy) for j in heavy[k + 1:]])
    distances = [md.compute_distances(t, pairs) for t in trajs]
    emb = embeddings(args, trajs)

    def run(features, descriptors, descriptor_names):
        return alignment(features, descriptors, lagtime=args.lag,
                         n_components=args.n_components, descriptor_names=descriptor_names)

    distance_names = [f"d{i}-{j}" for i, j in pairs]
    results = {}
    for name, features in (("embeddings", emb), ("distances", distances)):
        results[f"{name}_vs_torsions"] = run(features, torsions, torsion_names)
        results[f"{name}_vs_states"] = run(features, states, state_names)
        results[f"{name}_vs_torsions+states"] = run(features, both, torsion_names + state_names)
    results["embeddings_vs_distances"] = run(emb, distances, distance_names)
    dt_ps = float(trajs[0].timestep) if trajs[0].n_frames > 1 else float("nan")
    report = {
        "system": Path(args.top).stem, "model": args.model, "select": args.select,
        "frames": [t.n_frames for t in trajs], "stride": args.stride, "dt_ps": dt_ps,
        "lag_frames": args.lag, "lag_ps": args.lag * dt_ps,
        "state_fractions": dict(zip(state_names, onehot.mean(0).tolist(), strict=True)),
        "command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]),
        "geomfeat": geomfeat.__version__,
        "results": {k: v.to_dict() for k, v in results.items()},
    }

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
    figure(results, np.concatenate(angles), out / f"{args.name}.png", args, dt_ps)
    print(json.dumps({k: {"canonical_correlations": v["canonical_correlations"],
                          "explained_r2": v["explained_r2"]}
                      for k, v in report["results"].items()}, indent=1, ensure_ascii=False))
    return report


def figure(results: dict, angles: np.ndarray, path: Path, args: argparse.Namespace,
           dt_ps: float) -> None:
    fig = plt.figure(figsize=(15, 7.5))
    grid = fig.add_gridspec(2, 4, width_ratios=[3.6, 1, 2.2, 2.2])
    for row, key in enumerate(("embeddings_vs_torsions+states", "distances_vs_torsions+states")):
        res = results[key]
        pair = [fig.add_subplot(grid[row, 0]), fig.add_subplot(grid[row, 1])]
        plot_alignment(res, axes=pair)
        what = (f"{args.model} embeddings" if key.startswith("emb") else "heavy-atom distances")
        pair[0].set_title(f"TICA ICs of {what} (lag {args.lag * dt_ps:g} ps):\ncorrelation "
                          "with torsions and basins", fontsize=9)
        pair[1].set_title("canonical corr.", fontsize=9)
        comps = np.concatenate(res.components)
        order = np.random.default_rng(0).permutation(len(comps))
        for col in range(min(2, comps.shape[1])):
            ax = fig.add_subplot(grid[row, 2 + col])
            c = comps[order, col]
            lo, hi = np.percentile(c, [1, 99])
            sc = ax.scatter(np.degrees(angles[order, 0]), np.degrees(angles[order, -1]), c=c,
                            s=1, cmap="viridis", vmin=lo, vmax=hi, rasterized=True)
            ax.set_xlim(-180, 180)
            ax.set_ylim(-180, 180)
            ax.set_xlabel("φ (deg)")
            ax.set_ylabel("ψ (deg)")
            ax.set_title(f"{res.component_names[col]} of {what}\n"
                         f"(t = {res.timescales[col] * dt_ps:.1f} ps)", fontsize=9)
            fig.colorbar(sc, ax=ax, fraction=0.05)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
