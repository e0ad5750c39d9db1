"""Bar chart (log scale) of the frames/s in ``throughput.py`` JSON files, one panel per file.

Also takes ``profile_encoders.py`` reports (eager "old" and compiled "new" paths beside the
naive baseline)::

    python benchmarks/plot_throughput.py benchmarks/results/throughput_cpu.json \\
        benchmarks/results/throughput_h100.json -o benchmarks/results/throughput.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def label(run: dict) -> str:
    if "method" not in run:  # profile_encoders.py
        if run["model"] == "naive":
            return "naive PyG ViSNet"
        return f"{run['model']} ({'old, eager' if run['compile'] == 'never' else 'new'})"
    if run["method"] == "geomfeat":
        return run["model"]
    return {"naive": "naive PyG ViSNet", "distances": "mdtraj distances"}[run["method"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path)
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args()
    fig, axes = plt.subplots(1, len(args.reports), figsize=(6.5 * len(args.reports), 4.2),
                             squeeze=False)
    for ax, path in zip(axes[0], args.reports, strict=True):
        report = json.loads(path.read_text())
        runs = [r for r in report.get("runs", report.get("encoder_runs", []))
                if "error" not in r and r.get("method") != "distances"]
        systems = list(dict.fromkeys(f"{r['system']}\nbatch {r['batch']}" for r in runs))
        methods = list(dict.fromkeys(label(r) for r in runs))
        width = 0.8 / len(methods)
        for k, method in enumerate(methods):
            values = {f"{r['system']}\nbatch {r['batch']}": r["frames_per_s"]
                      for r in runs if label(r) == method}
            xs = [i + (k - (len(methods) - 1) / 2) * width for i in range(len(systems))]
            ax.bar(xs, [values.get(s, 0) for s in systems], width, label=method,
                   hatch="//" if method.startswith("naive") else None)
        ax.set_xticks(range(len(systems)), systems, fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("frames / s")
        ax.set_title(report.get("gpu") or f"CPU, {report['threads']} threads", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)


if __name__ == "__main__":
    main()
