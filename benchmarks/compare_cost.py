"""Cost of the whole ``geomfeat compare`` command, before/after, interleaved; prints JSON.

Runs the same ``geomfeat compare`` command line (the dev peptide ``examples/peptide`` with the
default feature sets, by default) with two copies of the package: ``--old-src`` (a folder
holding an older ``geomfeat/`` and ``weights/registry.json``, e.g. ``git archive 55a4d86
geomfeat weights/registry.json | tar -x -C DIR``) and this
checkout. Each run is a fresh child process started in an empty folder (so that only its
``PYTHONPATH`` decides which package is imported), in turns old/new (the order alternating
between repeats), all reading one readout cache (``--cache``; warm it with one run first, or
pass ``--cold`` to give every run an empty one and time the embedding too).

Reported per run: wall seconds, CPU seconds of the command and its worker processes (user +
sys), the load average before and after, the report's own timings; and, paired by feature set,
lag and seed, the test VAMP-2 of the VAMPNets and of linear VAMP (largest k) of new − old.
``speedup`` is the ratio of the medians old/new. Extra ``geomfeat compare`` options go after
``--``.

Example (the figures of ``docs/benchmarks.md``)::

    git archive 55a4d86 geomfeat weights/registry.json | tar -x -C /tmp/old_geomfeat_src
    python benchmarks/compare_cost.py --old-src /tmp/old_geomfeat_src --repeats 1 \\
        --out benchmarks/results/compare_cost_peptide.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import emit, environment

ROOT = Path(__file__).resolve().parents[1]
PEPTIDE = ROOT / "examples" / "peptide"


def _cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_once(src: Path, args: list[str], cache: Path, workdir: Path) -> dict:
    """One ``geomfeat compare`` in a child process importing ``geomfeat`` from ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src), "GEOMFEAT_EVAL_CACHE": str(cache)}
    workdir.mkdir(parents=True)
    cmd = [sys.executable, "-m", "geomfeat", "compare", *args, "-o", str(workdir / "out"),
           "--name", "r", "-q"]
    load0, cpu0, t0 = os.getloadavg(), _cpu_children(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _cpu_children() - cpu0
    if proc.returncode:
        raise SystemExit(f"{src}: geomfeat compare failed:\n{proc.stderr[-3000:]}")
    report = json.loads((workdir / "out" / "r.json").read_text())
    return {"src": str(src), "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "load_before": [round(x, 2) for x in load0],
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "timings": report["timings"], "scores": _scores(report)}


def _scores(report: dict) -> dict:
    """``{"fs|lag|seed": {"vampnet": test VAMP-2, "linear": linear VAMP-2 at the largest k}}``."""
    k = str(max(report["linear_dims"]))
    out = {}
    for fs, by_lag in report["scores"].items():
        for lag, entry in by_lag.items():
            for i, seed in enumerate(report["settings"]["seeds"]):
                out[f"{fs}|{lag}|{seed}"] = {
                    "linear": entry["linear"]["per_seed"][i][k],
                    "vampnet": (entry["vampnet"]["per_seed"][i]["vamp2"]
                                if entry.get("vampnet") else None)}
    return out


def paired(old: dict, new: dict) -> dict:
    """new − old per key, and a summary per model."""
    out: dict = {"per_run": {}, "summary": {}}
    for model in ("vampnet", "linear"):
        d = {key: new[key][model] - old[key][model] for key in old
             if old[key][model] is not None}
        if not d:
            continue
        v = np.array(list(d.values()))
        out["per_run"][model] = {key: round(x, 5) for key, x in d.items()}
        out["summary"][model] = {"mean_diff": round(float(v.mean()), 5),
                                 "max_abs_diff": round(float(np.abs(v).max()), 5),
                                 "new_better": int((v > 1e-9).sum()),
                                 "new_worse": int((v < -1e-9).sum()), "n": len(v)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--old-src", type=Path, required=True,
                    help="folder holding the old geomfeat/ package")
    ap.add_argument("--new-src", type=Path, default=ROOT, help="default: this checkout")
    ap.add_argument("--repeats", type=int, default=1, help="old/new pairs")
    ap.add_argument("--lags", nargs="+", default=["20ps", "100ps"])
    ap.add_argument("--seeds", nargs="+", default=["0", "1", "2"])
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "compare_cost")
    ap.add_argument("--cold", action="store_true", help="an empty readout cache per run")
    ap.add_argument("--out", type=Path)
    ap.add_argument("extra", nargs="*", help="more geomfeat compare options (after --)")
    a = ap.parse_args()
    trajs = sorted(str(p) for p in PEPTIDE.glob("peptide_r*.xtc"))
    args = [str(PEPTIDE / "peptide.pdb"), *trajs, "--lag", *a.lags, "--seeds", *a.seeds,
            *a.extra]
    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):
            order = [("old", a.old_src), ("new", a.new_src)]
            for name, src in order if r % 2 == 0 else order[::-1]:
                cache = Path(tmp) / f"cache{r}{name}" if a.cold else a.cache
                res = run_once(src.resolve(), args, cache, Path(tmp) / f"{name}{r}")
                runs.append({"variant": name, "repeat": r, **res})
                print(f"{name} repeat {r}: wall {res['wall_s']} s, cpu {res['cpu_s']} s, "
                      f"load {res['load_before']} -> {res['load_after']}", file=sys.stderr)
    med = {v: {m: float(np.median([x[m] for x in runs if x["variant"] == v]))
               for m in ("wall_s", "cpu_s")} for v in ("old", "new")}
    pairs = [paired(runs[i]["scores"] if runs[i]["variant"] == "old" else runs[i + 1]["scores"],
                    runs[i + 1]["scores"] if runs[i]["variant"] == "old" else runs[i]["scores"])
             for i in range(0, len(runs), 2)]
    emit({"benchmark": "compare_cost", **environment("cpu"), "cpus": os.cpu_count(),
          "compare_args": args, "cold_cache": a.cold, "median": med,
          "speedup": {m: round(med["old"][m] / med["new"][m], 2) for m in ("wall_s", "cpu_s")},
          "scores_new_minus_old": pairs,
          "runs": [{k: v for k, v in x.items() if k != "scores"} for x in runs]}, a.out)


if __name__ == "__main__":
    main()
