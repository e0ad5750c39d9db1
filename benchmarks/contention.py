"""``geomfeat embed`` idle and next to CPU-bound competitors: default vs fixed ``--threads``.

The same embed job (alanine-dipeptide heavy atoms, the bundled example trajectory tiled to
``--frames`` frames, one XTC file) runs as the whole ``geomfeat embed`` command, start-up
included, in a fresh process each time. Next to it run 0, 1, 2, ... competitor processes that
this script starts and stops itself (``--competitors``): each a single-threaded busy loop, the
simplest CPU-bound neighbour (another user's job on a shared workstation or cluster node).

Variants (``--variants``), each a label and optional settings after ``=``:

``default``
    the command as a user types it, no ``--threads`` and no ``OMP_NUM_THREADS``;
``old``
    the same with the package of ``--old-src`` on ``PYTHONPATH`` (e.g. an older commit,
    ``git archive COMMIT geomfeat | tar -x -C /tmp/old_src``);
``t1``, ``t2``, ...
    ``--threads 1``, ``--threads 2``, ...;
``LABEL=TOKENS``
    anything else: TOKENS split on ``,``; ``VAR:VALUE`` sets an environment variable, others
    are added to the command line (e.g. ``passive=OMP_WAIT_POLICY:PASSIVE``).

Runs are interleaved: each of ``--repeats`` rounds starts the competitors of each level, runs
every variant once in a rotated order, and stops them. The load (``/proc/loadavg``) is recorded
before and after each run. The report gives per level and variant the median frames/s and, per
level, each variant's median over the best fixed ``--threads`` median.

Example (``--old-src``: ``git archive 55a4d86 geomfeat weights | tar -x -C /tmp/old_src``)::

    python benchmarks/contention.py --old-src /tmp/old_src --repeats 5 \\
        --out benchmarks/results/contention_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _report import emit, environment

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "ala2"
SPIN = "while True: pass"


def tiled_trajectory(frames: int, folder: Path) -> Path:
    """An XTC of ``frames`` frames: the example trajectory repeated (in ``folder``)."""
    import mdtraj as md

    traj = md.load(str(EXAMPLE / "ala2.xtc"), top=str(EXAMPLE / "ala2.pdb"))
    reps = -(-frames // traj.n_frames)
    path = folder / f"ala2_{frames}.xtc"
    md.join([traj] * reps)[:frames].save_xtc(str(path))
    return path


def parse_variant(spec: str, old_src: Path | None) -> dict[str, Any]:
    """``{"label", "env", "args", "pythonpath"}`` of one ``--variants`` entry."""
    label, _, tokens = spec.partition("=")
    variant: dict[str, Any] = {"label": label, "env": {}, "args": [], "pythonpath": str(ROOT)}
    if label == "old":
        if old_src is None:
            raise SystemExit("variant 'old' needs --old-src")
        variant["pythonpath"] = str(old_src)
    elif label.startswith("t") and label[1:].isdigit() and not tokens:
        variant["args"] = ["--threads", label[1:]]
        variant["fixed_threads"] = int(label[1:])
    for token in filter(None, tokens.split(",")):
        if ":" in token and not token.startswith("-"):
            name, value = token.split(":", 1)
            variant["env"][name] = value
        else:
            variant["args"].append(token)
    return variant


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def run_embed(variant: dict[str, Any], traj: Path, frames: int, out: Path,
              timeout: float) -> dict[str, Any]:
    """One ``geomfeat embed`` run of ``variant``: wall seconds, frames/s, threads of the sidecar.

    A run stopped after ``timeout`` seconds counts as ``frames / timeout`` frames/s (an upper
    bound) with ``"timed_out": true``.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env.update(PYTHONPATH=variant["pythonpath"], **variant["env"])
    cmd = [sys.executable, "-m", "geomfeat", "embed", str(traj), str(EXAMPLE / "ala2.pdb"),
           "-o", str(out), "-q", "--device", "cpu", *variant["args"]]
    for old in (out, out.with_suffix(".json")):  # a complete output would be skipped
        old.unlink(missing_ok=True)
    before = loadavg()
    cpu0 = os.times()
    t0 = time.perf_counter()
    try:
        # run from the output's folder: ``-m`` puts the working directory first on sys.path
        subprocess.run(cmd, env=env, check=True, timeout=timeout, cwd=out.parent)
        timed_out, threads = False, json.loads(out.with_suffix(".json").read_text())["threads"]
    except subprocess.TimeoutExpired:  # subprocess.run has killed the child
        timed_out, threads = True, None
    seconds = time.perf_counter() - t0
    cpu1 = os.times()
    return {"variant": variant["label"], "seconds": round(seconds, 3), "timed_out": timed_out,
            "frames_per_s": round(frames / seconds, 1), "threads": threads,
            "cpu_seconds": round((cpu1.children_user - cpu0.children_user)
                                 + (cpu1.children_system - cpu0.children_system), 3),
            "load_before": before, "load_after": loadavg()}


def start_competitors(n: int) -> list[subprocess.Popen]:
    """Start ``n`` single-threaded busy loops (stopped by :func:`stop_competitors`)."""
    return [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(n)]


def stop_competitors(procs: list[subprocess.Popen]) -> None:
    """Stop the busy loops started by :func:`start_competitors` and reap them."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait()


def summarize(runs: list[dict[str, Any]], variants: list[dict[str, Any]],
              levels: list[int]) -> list[dict[str, Any]]:
    """Per competitor level and variant: median frames/s, range, ratio to the best fixed."""
    rows = []
    fixed = [v["label"] for v in variants if "fixed_threads" in v]
    for level in levels:
        med = {}
        for v in variants:
            fps = [r["frames_per_s"] for r in runs
                   if r["competitors"] == level and r["variant"] == v["label"]]
            med[v["label"]] = (statistics.median(fps), min(fps), max(fps),
                               sorted({str(r["threads"]) for r in runs
                                       if r["competitors"] == level
                                       and r["variant"] == v["label"]}))
        best = max(fixed, key=lambda label: med[label][0]) if fixed else None
        for v in variants:
            m, lo, hi, threads = med[v["label"]]
            rows.append({"competitors": level, "variant": v["label"],
                         "median_frames_per_s": round(m, 1), "min": lo, "max": hi,
                         "threads": ",".join(threads), "best_fixed": best,
                         "vs_best_fixed": round(m / med[best][0], 2) if best else None})
    return rows


def markdown(rows: list[dict[str, Any]], repeats: int) -> str:
    """The summary as a markdown table."""
    lines = [f"| competitors | variant | threads | frames/s (median of {repeats}) | range "
             "| × best fixed |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['competitors']} | {r['variant']} | {r['threads']} "
                     f"| {r['median_frames_per_s']:.0f} | {r['min']:.0f}–{r['max']:.0f} "
                     f"| {r['vs_best_fixed']:.2f} (vs {r['best_fixed']}) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6000,
                        help="frames of the embed job (the 2000-frame example, tiled)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--competitors", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=None,
                        help="default, old, t1, t2, ... or LABEL=TOKENS (default: default, "
                             "old if --old-src, t1 .. t<cores>)")
    parser.add_argument("--old-src", type=Path,
                        help="a folder holding an older geomfeat package (variant 'old')")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds after which a run is stopped (counted as frames/timeout)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the competitors too
    cores = len(os.sched_getaffinity(0))
    specs = args.variants or ["default", *(["old"] if args.old_src else []),
                              *(f"t{n}" for n in range(1, cores + 1))]
    variants = [parse_variant(s, args.old_src) for s in specs]
    report: dict[str, Any] = {
        **environment("cpu"), "cores": cores, "frames": args.frames, "repeats": args.repeats,
        "competitors": args.competitors, "variants": variants,
        "uptime_before": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        traj = tiled_trajectory(args.frames, Path(tmp))
        out = Path(tmp) / "emb.npy"
        run_embed(variants[0], traj, args.frames, out, args.timeout)  # warm caches, weights
        for round_ in range(args.repeats):
            for level in args.competitors:
                procs = start_competitors(level)
                try:
                    time.sleep(0.5 if level else 0)  # let the competitors get going
                    shift = (round_ + level) % len(variants)
                    for v in variants[shift:] + variants[:shift]:
                        row = {"round": round_, "competitors": level,
                               **run_embed(v, traj, args.frames, out, args.timeout)}
                        report["runs"].append(row)
                        print(json.dumps(row), file=sys.stderr, flush=True)
                finally:
                    stop_competitors(procs)
    report["uptime_after"] = subprocess.run(["uptime"], capture_output=True,
                                            text=True).stdout.strip()
    report["summary"] = summarize(report["runs"], variants, args.competitors)
    report["table"] = markdown(report["summary"], args.repeats)
    print(report["table"], file=sys.stderr)
    emit(report, args.out)


if __name__ == "__main__":
    main()
