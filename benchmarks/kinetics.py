"""Kinetics benchmark: geomfeat readouts against classical features, scored by test VAMP-2.

A thin wrapper over :func:`geomfeat.evaluate.compare` (the same as ``geomfeat compare``) that
writes its report into ``benchmarks/results/`` by default. The protocol (train / validation /
test split, linear VAMP and VAMPNet recipe, paired comparison) is documented in
:mod:`geomfeat.evaluate` and ``docs/benchmarks.md``; every option of ``geomfeat compare`` is
accepted, with ``--out`` (default ``benchmarks/results``) and ``--name`` for the report.

Example (alanine dipeptide, ``../shared/data/ala2``, 10 ps per frame after striding)::

    python benchmarks/kinetics.py ../shared/data/ala2/ala2.pdb \\
        ../shared/data/ala2/ala2_r0.xtc ../shared/data/ala2/ala2_r1.xtc \\
        --stride 10 --lag 10ps 20ps --threads 1 --name kinetics_ala2 \\
        --features visnet-denali:graph:scalar:last visnet-denali:residue:scalar:last \\
                   distances torsions
"""

from __future__ import annotations

import sys
from pathlib import Path

from geomfeat.cli import main as geomfeat_main

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    """Run ``geomfeat compare`` with ``--out DIR`` (default ``benchmarks/results``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    out = str(RESULTS)
    if "--out" in argv:
        i = argv.index("--out")
        out = argv[i + 1]
        del argv[i:i + 2]
    if "--name" not in argv:
        argv += ["--name", "kinetics"]
    return geomfeat_main(["compare", *argv, "-o", out])


if __name__ == "__main__":
    sys.exit(main())
