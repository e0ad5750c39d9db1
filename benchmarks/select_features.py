"""Feature-selection benchmark: is the set chosen on validation as good as the best on test?

A thin wrapper over :func:`geomfeat.evaluate.select_features` (linear stage only, no
VAMPNets) for the two development systems. After the selection it scores **every** set of up to
``--max-set`` candidate families on the test part (an oracle that the selection itself never
sees) and checks the acceptance of issue 22:

- the chosen set's mean test VAMP-2 is within one seed-sd (sd over seeds of the best test set's
  scores) of the best set found on test;
- it is at least the best single family's (mean test VAMP-2).

Prints the JSON (also written to ``benchmarks/results/select_SYSTEM_LAG.json``; the selection's
own report to ``select_SYSTEM_LAG_report.{json,md}``). Example::

    python benchmarks/select_features.py ala2 --lag 10ps --cache /tmp/cache
    python benchmarks/select_features.py peptide --lag 20ps --cache /tmp/cache
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _report import emit, environment

from geomfeat.evaluate import select_features
from geomfeat.evaluate.stats import paired, summary

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SHARED = ROOT.parent / "shared" / "data" / "ala2"
SYSTEMS = {
    "ala2": {"top": SHARED / "ala2.pdb", "trajs": [SHARED / "ala2_r0.xtc", SHARED / "ala2_r1.xtc"],
             "stride": 10, "n_blocks": 10},
    "peptide": {"top": ROOT / "examples" / "peptide" / "peptide.pdb",
                "trajs": sorted((ROOT / "examples" / "peptide").glob("peptide_r0*.xtc")),
                "stride": 1, "n_blocks": 5},
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("system", choices=sorted(SYSTEMS))
    p.add_argument("--lag", required=True)
    p.add_argument("--models", nargs="+", default=["visnet-denali"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--max-set", type=int, default=3)
    p.add_argument("--cache", default=None, help="folder of cached encoder readouts")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    sys_ = SYSTEMS[args.system]
    name = f"select_{args.system}_{args.lag}"
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() \
        else None
    t0 = time.perf_counter()
    result = select_features(sys_["top"], [str(t) for t in sys_["trajs"]], args.lag,
                             models=args.models, seeds=args.seeds, stride=sys_["stride"],
                             n_blocks=sys_["n_blocks"], max_set=args.max_set,
                             cache=args.cache, out=args.out, name=f"{name}_report",
                             write_features=False, command=" ".join(["python", *sys.argv]))
    select_s = time.perf_counter() - t0
    sel = result.selector
    fams = list(sel.names)
    oracle = {}
    max_dim = result.report["selection"]["max_reduced_dims"]
    for r in range(1, args.max_set + 1):
        for combo in itertools.combinations(fams, r):
            if max(sel.dims(combo)) <= max_dim:
                oracle["+".join(combo)] = sel.test_scores(combo)
    chosen = result.chosen
    picked = set(result.report["selection"]["chosen"])
    same = [n for n in oracle if set(n.split("+")) == picked]
    chosen_test = oracle[same[0]] if same else result.report["test"]["scores"][chosen]["values"]
    best = max(oracle, key=lambda n: np.mean(oracle[n]))
    best_single = max(fams, key=lambda n: np.mean(oracle[n]))
    sd = summary(oracle[best])["sd"]
    report = {
        "system": args.system, "lag": args.lag, "stage": "linear VAMP only (no VAMPNets)",
        "families": fams, "chosen": chosen, "runner_up": result.report["selection"]["runner_up"],
        "chosen_test": summary(chosen_test),
        "best_on_test": best, "best_on_test_score": summary(oracle[best]),
        "best_single": best_single, "best_single_test": summary(oracle[best_single]),
        "chosen_vs_best_on_test": paired(chosen_test, oracle[best]),
        "chosen_vs_best_single": paired(chosen_test, oracle[best_single]),
        "within_one_sd_of_best": bool(np.mean(chosen_test) >= np.mean(oracle[best]) - sd),
        "at_least_best_single": bool(np.mean(chosen_test) >= np.mean(oracle[best_single])),
        "rank_on_test": (1 + sorted(oracle, key=lambda n: -np.mean(oracle[n])).index(same[0])
                         if same else None),
        "n_sets_scored_on_test": len(oracle),
        "all_sets_test_mean": {n: round(float(np.mean(v)), 4) for n, v in sorted(
            oracle.items(), key=lambda kv: -np.mean(kv[1]))},
        "select_s": round(select_s, 1), "total_s": round(time.perf_counter() - t0, 1),
        "loadavg_at_start": load,
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                 capture_output=True, text=True).stdout.strip(),
        "environment": environment("cpu"),
    }
    emit(report, args.out / f"{name}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
