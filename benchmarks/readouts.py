"""Scale of every layer's readout and cost of the readouts options; prints JSON.

For every encoder, on the first ``--frames`` frames of a trajectory (heavy atoms):

* per layer: standard deviation of the per-atom scalar readout and mean per-atom norm of the
  vector readout (``layers="all"``, ``pool="atom"``, ``features="equivariant"``), to show the
  readouts' scales (see ``docs/readouts.md``);
* seconds for ``pool="residue"`` (the default readout), ``pool="residue"`` with
  ``layers="all"`` and ``pool="residue-local"``, best of ``--repeats`` in this process, with
  their ratios to the first; and the mean number of atoms in a residue's local graph.

Example::

    python benchmarks/readouts.py --traj examples/ala2/ala2.xtc --top examples/ala2/ala2.pdb \\
        --out benchmarks/results/readouts_ala2.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _report import emit, environment


def best_time(featurizer, traj, repeats: int) -> float:
    featurizer.transform(traj[:2])  # load the encoder, warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        featurizer.transform(traj)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traj", type=Path, default=Path("examples/ala2/ala2.xtc"))
    parser.add_argument("--top", type=Path, default=Path("examples/ala2/ala2.pdb"))
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--models", nargs="+",
                        default=["visnet-denali", "et-denali", "tensornet-denali"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import mdtraj as md
    import torch

    from geomfeat import GeomFeaturizer
    from geomfeat.localgraph import residue_local_graphs
    from geomfeat.neighbors import radius_graph

    traj = md.load(args.traj, top=args.top)[: args.frames]
    rows = []
    for model in args.models:
        every = GeomFeaturizer(model, pool="atom", features="equivariant", layers="all")
        out = every.transform(traj)  # (F, N, 4, L*H)
        h = every.card.hidden_channels
        layers = []
        for i in range(every.n_layers):
            block = out[..., i * h : (i + 1) * h]
            layers.append({"layer": i, "scalar_std": float(block[:, :, 0].std()),
                           "vector_norm_mean": float(np.linalg.norm(block[:, :, 1:], axis=2)
                                                     .mean())})
        reader = every.reader(traj)
        pos = torch.tensor(next(reader.iter_batches(1, range(1))).positions)  # Å
        local = residue_local_graphs(radius_graph(pos, every.card.cutoff),
                                     torch.as_tensor(reader.residues), 1,
                                     len(reader.residue_labels))
        timings = {name: best_time(GeomFeaturizer(model, **options), traj, args.repeats)
                   for name, options in (
                       ("residue", dict(pool="residue")),
                       ("residue_all_layers", dict(pool="residue", layers="all")),
                       ("residue_local", dict(pool="residue-local")))}
        rows.append({"model": model, "layers": layers, "seconds": timings,
                     "ratio_to_residue": {k: v / timings["residue"] for k, v in timings.items()},
                     "atoms": reader.n_atoms, "residues": len(reader.residue_labels),
                     "local_graph_atoms_mean": local.edges.num_nodes
                     / len(reader.residue_labels)})
    emit({"environment": environment("cpu"), "trajectory": str(args.traj),
          "frames": len(traj), "select": "heavy", "results": rows}, args.out)


if __name__ == "__main__":
    main()
