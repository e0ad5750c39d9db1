"""Markdown tables from the JSON that the scripts in ``benchmarks/`` write.

    python benchmarks/report.py benchmarks/results/encoders_*.json

The float64 column is the error of the float32 *output* of the encoder run in float64, against the
oracle (itself float64 results stored as float32): 0 means bit-identical.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def accuracy_table(report: dict) -> str:
    rows = {(r["model"], r["case"], r["dtype"]): r for r in report["accuracy"]}
    header = ["model", "case", "atoms", "float32 max", "float32 mean", "float32 99.9 %",
              "float64 run, max"]
    return _markdown(header, [
        [model, case, str(r["atoms"]), f"{r['max_abs_err']:.1e}", f"{r['mean_abs_err']:.1e}",
         f"{r['p99.9_abs_err']:.1e}",
         f"{rows.get((model, case, 'float64'), {}).get('max_abs_err', float('nan')):.1e}"]
        for (model, case, dtype), r in rows.items() if dtype == "float32"])


def _gpu_memory(report: dict, r: dict) -> list[str]:
    """The peak-GPU-memory cell of a row, on GPU reports only."""
    return [f"{r.get('peak_gpu_mib', 0):,.0f}"] if report.get("gpu") else []


def _gpu_header(report: dict) -> list[str]:
    return ["peak GPU MiB"] if report.get("gpu") else []


def throughput_table(report: dict) -> str:
    header = ["model", "system", "atoms", "batch", "frames/s", "atoms/s", "peak RSS MiB"]
    return _markdown(header + _gpu_header(report), [
        [r["model"], r["system"], str(r["atoms"]), str(r["batch"]), f"{r['frames_per_s']:,.1f}",
         f"{r['atoms_per_s']:,.0f}", f"{r['peak_rss_mib']:,.0f}", *_gpu_memory(report, r)]
        for r in report["throughput"]])


def models_table(report: dict) -> str:
    header = ["model", "architecture", "layers", "hidden", "cutoff (Å)", "parameters"]
    return _markdown(header, [
        [m["model"], m["architecture"], str(m["layers"]), str(m["hidden"]),
         f"{m['cutoff_A']:g}", f"{m['parameters']:,}"]
        for m in report.get("models", [])])


def comparison_table(report: dict) -> str:
    """Rows of ``throughput.py``: frames/s of every method and its ratio to the naive baseline."""
    runs = [r for r in report["runs"] if "error" not in r]
    naive = {(r["system"], r["batch"]): r["frames_per_s"] for r in runs if r["method"] == "naive"}
    names = {"naive": "naive PyG ViSNet", "distances": "mdtraj distances"}
    rows = []
    for r in runs:
        base = naive.get((r["system"], r["batch"]))
        rows.append([r["system"], str(r["atoms"]), str(r["batch"]),
                     r["model"] if r["method"] == "geomfeat" else names[r["method"]],
                     f"{r['frames_per_s']:,.1f}",
                     f"{r['frames_per_s'] / base:.2f}" if base else "–",
                     f"{r['atoms_per_s']:,.0f}", f"{r['peak_rss_mib']:,.0f}",
                     *_gpu_memory(report, r)])
    header = ["system", "atoms", "batch", "method", "frames/s", "× naive", "atoms/s",
              "peak RSS MiB"]
    return _markdown(header + _gpu_header(report), rows)


def encoder_runs_table(report: dict) -> str:
    """Rows of ``profile_encoders.py``: eager (old) and compiled (new) paths beside naive."""
    runs = [r for r in report["encoder_runs"] if "error" not in r]
    naive = {(r["system"], r["batch"]): r["frames_per_s"] for r in runs if r["model"] == "naive"}
    header = ["system", "batch", "edges", "method", "edge messages", "frames/s", "× naive",
              "neighbour list (s)", "peak GPU MiB"]
    rows = []
    for r in runs:
        base = naive.get((r["system"], r["batch"]))
        is_naive = r["model"] == "naive"
        rows.append([r["system"], str(r["batch"]), f"{r['edges']:,}" if "edges" in r else "–",
                     "naive PyG ViSNet" if is_naive else r["model"],
                     "PyG" if is_naive else
                     {"never": "eager (old)", "auto": "compiled (new)"}.get(r["compile"],
                                                                            r["compile"]),
                     f"{r['frames_per_s']:,.1f}",
                     f"{r['frames_per_s'] / base:.2f}" if base else "–",
                     str(r.get("neighbours_s", "–")), f"{r.get('peak_gpu_mib', 0):,.0f}"])
    return _markdown(header, rows)


def interleaved_table(report: dict) -> str:
    """Rows of ``throughput.py --interleave``: median ratio of geomfeat to naive in turns."""
    header = ["system", "atoms", "batch", "model", "compile", "geomfeat frames/s (median)",
              "naive frames/s (median)", "× naive median (min–max)"]
    return _markdown(header, [
        [r["system"], str(r["atoms"]), str(r["batch"]), r["model"], r["compile"],
         f"{sorted(r['geomfeat_frames_per_s'])[len(r['geomfeat_frames_per_s']) // 2]:,.1f}",
         f"{sorted(r['naive_frames_per_s'])[len(r['naive_frames_per_s']) // 2]:,.1f}",
         f"{r['ratio_median']:.2f} ({r['ratio_min']:.2f}–{r['ratio_max']:.2f})"]
        for r in report["runs"] if r.get("method") == "interleaved"])


def pipeline_table(report: dict) -> str:
    """Rows of ``throughput.py --pipeline``: encoder alone vs reading vs the whole command."""
    header = ["model", "files × frames", "batch", "read alone", "encoder alone",
              "read + encode, inline", "read + encode, read-ahead thread", "geomfeat embed",
              "geomfeat embed after start-up", "start-up (s)"]
    return _markdown(header, [
        [r["model"], f"{r['trajectories']} × {r['frames_each']:,}", str(r["batch"]),
         *(f"{r.get(k, float('nan')):,.1f}" for k in (
             "read_frames_per_s", "encoder_frames_per_s", "transform_inline_frames_per_s",
             "transform_prefetch_frames_per_s", "command_frames_per_s",
             "command_after_startup_frames_per_s", "startup_seconds"))]
        for r in report["pipeline"]])


def rss_table(report: dict) -> str:
    rows = report.get("embed_rss", [])
    if not rows:
        return ""
    header = ["frames", "seconds", "frames/s", "peak RSS MiB", "RSS / first row"]
    return _markdown(header, [
        [f"{r['frames']:,}", str(r["seconds"]), f"{r['frames_per_s']:,.0f}",
         f"{r['peak_rss_mib']:,.1f}", f"{r['peak_rss_mib'] / rows[0]['peak_rss_mib']:.3f}"]
        for r in rows])


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
        if "encoder_runs" in report:  # profile_encoders.py
            print(encoder_runs_table(report) + "\n")
            continue
        if report.get("pipeline"):
            print(pipeline_table(report) + "\n")
            if not report.get("runs"):
                continue
        if any(r.get("method") == "interleaved" for r in report.get("runs", [])):
            print(interleaved_table(report) + "\n")
            continue
        if report.get("runs"):  # throughput.py
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
