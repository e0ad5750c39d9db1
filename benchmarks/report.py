"""Markdown tables from the JSON that the scripts in ``benchmarks/`` write.

    python benchmarks/report.py benchmarks/results/encoders_*.json

The float64 column is the error of the float32 *output* of the encoder run in float64, against the
oracle (itself float64 results stored as float32): 0 means bit-identical.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def accuracy_table(report: dict) -> str:
    lines = ["| model | case | atoms | float32 max | float32 mean | float32 99.9 % "
             "| float64 run, max |", "| --- | --- | --- | --- | --- | --- | --- |"]
    rows = {(r["model"], r["case"], r["dtype"]): r for r in report["accuracy"]}
    for (model, case, dtype), r in rows.items():
        if dtype != "float32":
            continue
        r64 = rows.get((model, case, "float64"), {})
        lines.append(f"| {model} | {case} | {r['atoms']} | {r['max_abs_err']:.1e} | "
                     f"{r['mean_abs_err']:.1e} | {r['p99.9_abs_err']:.1e} | "
                     f"{r64.get('max_abs_err', float('nan')):.1e} |")
    return "\n".join(lines)


def throughput_table(report: dict) -> str:
    gpu = report.get("gpu")
    head = "| model | system | atoms | batch | frames/s | atoms/s | peak RSS MiB |"
    sep = "| --- | --- | --- | --- | --- | --- | --- |"
    if gpu:
        head += " peak GPU MiB |"
        sep += " --- |"
    lines = [head, sep]
    for r in report["throughput"]:
        line = (f"| {r['model']} | {r['system']} | {r['atoms']} | {r['batch']} | "
                f"{r['frames_per_s']:,.1f} | {r['atoms_per_s']:,.0f} | {r['peak_rss_mib']:,.0f} |")
        if gpu:
            line += f" {r.get('peak_gpu_mib', 0):,.0f} |"
        lines.append(line)
    return "\n".join(lines)


def models_table(report: dict) -> str:
    lines = ["| model | architecture | layers | hidden | cutoff (Å) | parameters |",
             "| --- | --- | --- | --- | --- | --- |"]
    for m in report.get("models", []):
        lines.append(f"| {m['model']} | {m['architecture']} | {m['layers']} | {m['hidden']} | "
                     f"{m['cutoff_A']:g} | {m['parameters']:,} |")
    return "\n".join(lines)


def comparison_table(report: dict) -> str:
    """Rows of ``throughput.py``: frames/s of every method and its ratio to the naive baseline."""
    gpu = bool(report.get("gpu"))
    lines = ["| system | atoms | batch | method | frames/s | × naive | atoms/s | peak RSS MiB"
             + (" | peak GPU MiB |" if gpu else " |"),
             "| --- | --- | --- | --- | --- | --- | --- | ---" + (" | --- |" if gpu else " |")]
    runs = [r for r in report["runs"] if "error" not in r]
    naive = {(r["system"], r["batch"]): r["frames_per_s"] for r in runs if r["method"] == "naive"}
    for r in runs:
        name = r["model"] if r["method"] == "geomfeat" else (
            "naive PyG ViSNet" if r["method"] == "naive" else "mdtraj distances")
        ratio = naive.get((r["system"], r["batch"]))
        line = (f"| {r['system']} | {r['atoms']} | {r['batch']} | {name} | "
                f"{r['frames_per_s']:,.1f} | {r['frames_per_s'] / ratio:.2f} | "
                f"{r['atoms_per_s']:,.0f} | {r['peak_rss_mib']:,.0f} |" if ratio else
                f"| {r['system']} | {r['atoms']} | {r['batch']} | {name} | "
                f"{r['frames_per_s']:,.1f} | – | {r['atoms_per_s']:,.0f} | "
                f"{r['peak_rss_mib']:,.0f} |")
        if gpu:
            line += f" {r.get('peak_gpu_mib', 0):,.0f} |"
        lines.append(line)
    return "\n".join(lines)


def rss_table(report: dict) -> str:
    rows = report.get("embed_rss", [])
    if not rows:
        return ""
    lines = ["| frames | seconds | frames/s | peak RSS MiB | RSS / first row |",
             "| --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['frames']:,} | {r['seconds']} | {r['frames_per_s']:,.0f} | "
                     f"{r['peak_rss_mib']:,.1f} | "
                     f"{r['peak_rss_mib'] / rows[0]['peak_rss_mib']:.3f} |")
    return "\n".join(lines)


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def precision_table(report: dict) -> str:
    """Rows of ``precision.py``: errors against the float64 reference and speed per option."""
    header = ["model", "case", "atoms", "dtype", "atom max", "atom mean", "atom 99 %",
              "graph max (relative)", "frames/s (batch)", "× float32"]
    return _markdown(header, [
        [r["model"], r["case"], str(r["atoms"]), r["dtype"], f"{r['atom_max']:.1e}",
         f"{r['atom_mean']:.1e}", f"{r['atom_p99']:.1e}",
         f"{r['graph_max']:.1e} ({r['graph_rel']:.0e})",
         f"{r['frames_per_s']:,.2f} ({r['batch']})", f"{r['speed_vs_float32']:.2f}"]
        for r in report["precision"]])


def cluster_table(report: dict) -> str:
    """Rows of ``cluster.py``: wall time of embed_many per configuration."""
    header = ["configuration", "threads per task", "cluster start (s)", "wall time (s)",
              "frames/s", "× serial", "max \\|diff\\| vs serial"]
    return _markdown(header, [
        [r["config"], str(r["threads"]), str(r.get("cluster_start_s", "–")), str(r["wall_s"]),
         f"{r['frames_per_s']:,.0f}", f"{r['speedup_vs_serial']:.2f}",
         f"{r['max_abs_diff_vs_serial']:.1e}"]
        for r in report["cluster"]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path)
    args = parser.parse_args()
    for path in args.reports:
        report = json.loads(path.read_text())
        where = report.get("gpu") or f"CPU, {report['threads']} threads"
        print(f"### {path.name}: {where}, torch {report['torch']}\n")
        print(f"Command: `{report['command']}`\n")
        if "precision" in report:
            print(precision_table(report) + "\n")
            continue
        if "cluster" in report:
            print(cluster_table(report) + "\n")
            continue
        if "runs" in report:  # throughput.py
            print(comparison_table(report) + "\n")
            if report.get("embed_rss"):
                print(rss_table(report) + "\n")
            continue
        if report.get("models"):
            print(models_table(report) + "\n")
        print(accuracy_table(report) + "\n")
        print(throughput_table(report) + "\n")


if __name__ == "__main__":
    main()
