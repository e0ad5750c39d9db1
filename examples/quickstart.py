"""Quick start: embed the bundled alanine-dipeptide trajectory and fit TICA on the embeddings.

Run from the repository root::

    python examples/quickstart.py

Prints the embedding shape, TICA's leading timescales (ps) and how well the first TICA
coordinate tracks the backbone dihedrals.
"""

from __future__ import annotations

from pathlib import Path

import mdtraj as md
import numpy as np
from deeptime.decomposition import TICA

from geomfeat import GeomFeaturizer

HERE = Path(__file__).resolve().parent
traj = md.load(HERE / "ala2" / "ala2.xtc", top=HERE / "ala2" / "ala2.pdb")  # nm; 1 ps per frame

featurizer = GeomFeaturizer("visnet-denali", select="heavy", pool="graph", reduce="mean")
embeddings = featurizer.transform(traj)  # (2000, 64) float32, coordinates converted to Å
print(f"embeddings: {embeddings.shape} {embeddings.dtype}")

lag = 10  # ps
tica = TICA(lagtime=lag, dim=2).fit(embeddings).fetch_model()
timescales = tica.timescales(lagtime=lag)[:3]
print("TICA timescales (ps):", np.array2string(timescales, precision=1))

ic = tica.transform(embeddings)
_, phi = md.compute_phi(traj)
_, psi = md.compute_psi(traj)
for name, angle in (("phi", phi[:, 0]), ("psi", psi[:, 0])):
    r = max(abs(np.corrcoef(ic[:, 0], f(angle))[0, 1]) for f in (np.sin, np.cos))
    print(f"|corr(IC1, sin/cos {name})| = {r:.2f}")
