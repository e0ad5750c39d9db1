"""Why the old VAMPNet recipe stopped early: validation curves against optimizer steps.

Reads the report of the previous protocol (``results/kinetics_ala2_v0.json``: batch 1024, an
epoch = one pass over the training pairs, patience 10 epochs, learning rate halved after 4)
and a ``geomfeat compare`` report made with the current recipe, and plots validation VAMP-2
against optimizer steps for the first lag both share, one panel per feature set. Prints the
steps each old run trained and the steps its patience allowed (JSON).

    python benchmarks/plot_recipe_diagnosis.py benchmarks/results/kinetics_ala2_v0.json \\
        benchmarks/results/compare_ala2.json -o benchmarks/results/recipe_diagnosis_ala2.png
"""

from __future__ import annotations

import argparse
import json
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

#: Feature sets of the old report and their names in a compare report.
PAIRS = {"visnet-denali:graph": "visnet-denali:graph:scalar:last",
         "visnet-denali:residue": "visnet-denali:residue:scalar:last",
         "distances": "distances", "torsions": "torsions"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("-o", "--output", required=True)
    args = p.parse_args()
    old, new = json.load(open(args.old)), json.load(open(args.new))
    lag = 1  # frames (10 ps at stride 10): the first lag of both reports
    split = old["splits"][[s["lag"] for s in old["splits"]].index(lag)]
    pairs = sum(b - a - lag for _, a, b in split["train"])
    steps_per_epoch = math.ceil(pairs / old["settings"]["batch_size"])
    spe_new = new["settings"]["recipe"]["steps_per_epoch"]
    names = [n for n in PAIRS if n in old["feature_sets"] and PAIRS[n] in new["scores"]]
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.2), sharey=True,
                             squeeze=False)
    summary = {"old_steps_per_epoch": steps_per_epoch,
               "old_patience_steps": old["settings"]["patience"] * steps_per_epoch,
               "new_patience_steps": new["settings"]["recipe"]["patience"] * spe_new,
               "runs": {}}
    for ax, name in zip(axes[0], names, strict=True):
        _lobe, res = next(iter(old["feature_sets"][name]["vampnet"].items()))
        for run in res[str(lag)]["runs"]:
            c = run["val_curve"]
            ax.plot(steps_per_epoch * np.arange(1, len(c) + 1), c, "--", lw=1,
                    color=f"C{run['seed']}")
            summary["runs"].setdefault(name, []).append(
                {"seed": run["seed"], "steps": run["epochs"] * steps_per_epoch,
                 "best_step": run["best_epoch"] * steps_per_epoch, "final_lr": run["final_lr"]})
        for k, seed_run in enumerate(new["scores"][PAIRS[name]][str(lag)]["vampnet"]["per_seed"]):
            for j, r in enumerate(seed_run["runs"]):
                c = r["val_curve"]
                ax.plot(spe_new * np.arange(1, len(c) + 1), c, "-",
                        lw=1.2 if j == seed_run["restart"] else 0.5, color=f"C{k}")
        ax.set_title(f"{name} (lag 10 ps)", fontsize=8)
        ax.set_xlabel("optimizer steps", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0, 0].set_ylabel("validation VAMP-2", fontsize=8)
    fig.suptitle("dashed: old recipe (batch 1024, patience 10 passes); solid: current recipe "
                 "(thick = chosen restart); colour = seed", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.output, dpi=80)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
