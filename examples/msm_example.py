"""End to end: trajectory → geomfeat embeddings → TICA → k-means → MSM → implied timescales.

Run from the repository root (needs matplotlib: ``pip install matplotlib``, or the
``examples`` or ``test`` extra; plain ``pip install geomfeat`` does not bring it)::

    python examples/msm_example.py [--out msm_its.png]

Uses the bundled 2 ns alanine-dipeptide trajectory (1 ps per frame): far too short for converged
kinetics (it only samples the β ⇄ α_R transition), but every step is the one a real project
takes. Prints the MSM's leading implied timescales and writes the implied-timescale plot.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import matplotlib
except ImportError:  # only the plot needs it, but the plot is the point of this example
    sys.exit("msm_example.py needs matplotlib: pip install matplotlib "
             "(or geomfeat's 'examples' or 'test' extra)")

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mdtraj as md
import numpy as np
from deeptime.clustering import KMeans
from deeptime.decomposition import TICA
from deeptime.markov.msm import MaximumLikelihoodMSM
from deeptime.plots import plot_implied_timescales
from deeptime.util.validation import implied_timescales

from geomfeat import GeomFeaturizer

HERE = Path(__file__).resolve().parent
parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--out", default="msm_its.png", help="implied-timescale plot (PNG)")
parser.add_argument("--model", default="visnet-denali")
args = parser.parse_args()

# 1. trajectory → embeddings: one (T, 64) float32 array, heavy atoms, sum over atoms
traj = md.load(HERE / "ala2" / "ala2.xtc", top=HERE / "ala2" / "ala2.pdb")  # 1 ps per frame
dt_ps = float(traj.timestep)
embeddings = GeomFeaturizer(args.model, select="heavy", pool="graph").transform(traj)
print(f"embeddings: {embeddings.shape} {embeddings.dtype}")

# 2. embeddings → TICA (kinetic map scaling), 2 coordinates
tica_lag = 10  # frames
tica = TICA(lagtime=tica_lag, dim=2, scaling="kinetic_map").fit(embeddings).fetch_model()
ics = tica.transform(embeddings)
print("TICA timescales (ps):", np.array2string(tica.timescales(lagtime=tica_lag)[:3] * dt_ps,
                                               precision=1))

# 3. TICA coordinates → microstates
kmeans = KMeans(n_clusters=20, init_strategy="kmeans++", max_iter=100, fixed_seed=13)
dtraj = kmeans.fit(ics).fetch_model().transform(ics)

# 4. microstates → MSMs at several lag times → implied timescales
lags = [1, 2, 5, 10, 20, 40]
msms = [MaximumLikelihoodMSM(lagtime=lag, reversible=True).fit_fetch(dtraj) for lag in lags]
its = implied_timescales(msms, n_its=3)
table = np.stack([its.timescales_for_process(k) for k in range(its.max_n_processes)], 1)
for lag, ts in zip(its.lagtimes, table, strict=True):
    print(f"MSM lag {lag * dt_ps:4g} ps: implied timescales (ps) "
          f"{np.array2string(ts * dt_ps, precision=1)}")

# 5. the implied-timescale plot (lag and timescales in frames of 1 ps)
fig, ax = plt.subplots(figsize=(5, 3.5))
plot_implied_timescales(its, n_its=3, ax=ax)
ax.set_yscale("log")
ax.set_xlabel(f"lag time (frames of {dt_ps:g} ps)")
ax.set_ylabel(f"implied timescale (frames of {dt_ps:g} ps)")
ax.set_title(f"MSM on TICA of {args.model} embeddings", fontsize=9)
fig.tight_layout()
fig.savefig(args.out, dpi=90)
print(f"wrote {args.out}")
