"""Report of a feature selection: JSON, markdown, and the chosen set's features as ``.npy``.

Files written by :func:`write_selection` into the output folder, for ``name``:

- ``NAME.json``                    every setting, split, score, step and cost;
- ``NAME.md``                      the choice, the steps, the test scores and the costs;
- ``NAME_features/STEM.npy``       the chosen set's features, one float32 ``(T, D)`` array per
                                   trajectory (``STEM`` its file name without suffix; the
                                   position is prefixed when stems repeat).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .selection import SelectionResult

__all__ = ["feature_files", "markdown", "write_selection"]


def _fmt(s: dict | None, digits: int = 3) -> str:
    return "-" if not s else f"{s['mean']:.{digits}f} ± {s['sd']:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows)]


def feature_files(paths: Sequence[str], folder: Path) -> list[Path]:
    """One ``.npy`` path in ``folder`` per trajectory, named by its stem."""
    stems = [Path(p).stem for p in paths]
    if len(set(stems)) != len(stems):
        stems = [f"{i:03d}_{s}" for i, s in enumerate(stems)]
    return [folder / f"{s}.npy" for s in stems]


def markdown(report: dict) -> str:
    """The selection report as markdown."""
    cfg, sel, test = report["settings"], report["selection"], report["test"]
    lag = report["lag"]
    sp = report["splits"][0]["frames"]
    lag_text = f"{lag['text']} ({lag['frames']} frames)"
    lines = [f"# geomfeat feature selection: {report['system']}", "",
             f"{sum(report['data']['frames'])} frames in {len(report['data']['paths'])} "
             f"trajectories (stride {report['data']['stride']}); lag {lag_text}. Test part dealt "
             f"once (seed {cfg['test_seed']}, {sp['test']} frames) and read only after the "
             f"choice; training / validation re-dealt per seed {cfg['seeds']} ({sp['train']} / "
             f"{sp['validation']} frames). Every family: standardised, PCA on the training part, "
             f"dimension chosen on a quarter of the training blocks held out from the fit; "
             f"sets are concatenations of the reduced families, scored by linear VAMP-2 "
             f"(k = {cfg['k']}; 1 = no kinetic information).",
             "", "## Choice", "",
             f"**Chosen: `{sel['name']}`** (validation VAMP-2 "
             f"{_fmt(sel['validation'].get(sel['name']))}). Runner-up: "
             + (f"`{sel['runner_up']}` ({_fmt(sel['validation'][sel['runner_up']])})."
                if sel["runner_up"] else "none."), ""]
    c = test["chosen_vs_best_single"]
    best = test["best_single"]
    if best == sel["name"]:
        lines += [f"On the test part the chosen set is also the best single family: "
                  f"{_fmt(test['scores'][best])}.", ""]
    else:
        lines += [f"On the test part the chosen set scores {_fmt(test['scores'][sel['name']])}"
                  f", the best single family `{best}` {_fmt(test['scores'][best])}: per-seed "
                  f"difference {_fmt(c['diff'])}, ratio {c['ratio']:.3f}, {c['wins']}/{c['n']} "
                  f"seeds won, paired t-test p = {c['t_p']:.2g}.", ""]
    lines += ["## Forward selection (validation only)", "",
              f"A family is added when its per-seed validation improvements d have mean(d) > 0 "
              f"and mean(d) > {sel['noise']} × sd(d); at most {sel['max_set']} families.", ""]
    rows = []
    for i, st in enumerate(report["selection"]["steps"]):
        cand = "+".join([*st["base"], st["best"]])
        imp = "first family" if "diff" not in st else (
            f"{_fmt(st['diff'])} (threshold {st['threshold']:.3f})")
        rows.append([str(i + 1), f"`{cand}`", _fmt(st["candidates"][cand]), imp,
                     "added" if st["accepted"] else "not added: selection stops"])
    lines += [*_table(["step", "best candidate", "validation VAMP-2", "improvement",
                       "decision"], rows), ""]
    if report.get("vampnet_stage"):
        v = report["vampnet_stage"]
        lines += ["VAMPNet finalists (validation VAMP-2): " + "; ".join(
            f"`{f}` {_fmt(s)}" for f, s in v["val"].items()) + ".", ""]
    lines += ["## Test VAMP-2 (chosen set and single families, read once)", ""]
    rows = [[f"`{n}`" + (" (chosen)" if n == sel["name"] else ""), _fmt(s),
             ", ".join(f"{x:.3f}" for x in s["values"])] for n, s in test["scores"].items()]
    lines += [*_table(["feature set", "test VAMP-2", "per seed"], rows), ""]
    lines += ["## Cost per family", ""]
    rows = []
    for n, f in report["families"].items():
        rows.append([f"`{n}`", "×".join(map(str, f["frame_shape"])), f"{f['memory_mb']:.0f}",
                     f"{f['build_s']:.1f}", f"{f['reduce_s']:.1f}",
                     ", ".join(map(str, f["reduced_dims"])), f["note"]])
    lines += [*_table(["family", "shape", "memory estimate (MB)", "build (s)",
                       "reduce + choose dim (s)", "PCA dims per seed", "note"], rows), ""]
    if report["left_out"]:
        lines += ["Left out: " + "; ".join(f"`{d['spec']}` ({d['reason']})"
                                           for d in report["left_out"]) + ".", ""]
    ff = report["final_features"]
    lines += ["## The chosen set's features", "",
              f"`{ff['spec']}`: {ff['how']}; {ff['dims']} dimensions ("
              + ", ".join(f"`{n}` {m}" for n, m in ff["families"].items()) + ")."]
    if ff.get("files"):
        lines += ["", "```python", "import numpy as np",
                  "from deeptime.decomposition import TICA", "",
                  f"X = [np.load(f) for f in {ff['files']!r}]",
                  f"tica = TICA(lagtime={lag['frames']}, dim=2).fit(X).fetch_model()",
                  "Y = [tica.transform(x) for x in X]  # then k-means and an MSM", "```"]
    lines += ["", f"The raw features: `geomfeat compare ... --features {ff['spec']}`, or "
              f"`geomfeat.evaluate.features.build_feature_sets([{ff['spec']!r}], ...)`.", ""]
    lines += [f"Total {report['timings']['total_s']:.0f} s on {report['host']['cpus']} CPUs "
              f"({report['settings']['threads']} torch thread(s)).", ""]
    if report.get("command"):
        lines += ["```sh", report["command"], "```", ""]
    return "\n".join(lines)


def write_selection(result: SelectionResult, out: Path, name: str, paths: Sequence[str], *,
                    write_features: bool = True) -> list[Path]:
    """Write ``NAME.json``, ``NAME.md`` and (optionally) the features; returns the paths.

    Every file is written under a temporary name and renamed.
    """
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    report = result.report
    if write_features:
        folder = out / f"{name}_features"
        folder.mkdir(exist_ok=True)
        targets = feature_files(paths, folder)
        for path, x in zip(targets, result.features, strict=True):
            tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npy")
            np.save(tmp, x)
            tmp.replace(path)
            files.append(path)
        report["final_features"]["files"] = [str(p) for p in targets]
    for suffix, text in ((".json", json.dumps(report, indent=1, default=float) + "\n"),
                         (".md", markdown(report) + "\n")):
        path = out / f"{name}{suffix}"
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        files.insert(0, path)
    return files
