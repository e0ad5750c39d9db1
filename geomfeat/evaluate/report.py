"""Report of a comparison: JSON (every setting and score), markdown tables, matplotlib plots.

Files written by :func:`write_report` into the output folder, for ``name``:

- ``NAME.json``          the whole report (settings, splits, per-seed scores, curves, timings);
- ``NAME.md``            the tables;
- ``NAME_scores.png``    test VAMP-2 per feature set and lag, mean ± sd over seeds (bars);
- ``NAME_its.png``       implied timescales against lag time (TICA on the seed-0 models'
                         outputs at the first lag: linear VAMP and VAMPNet);
- ``NAME_fes.png``       free energy on the first two VAMP components of the seed-0 models
                         at the first lag (linear VAMP, VAMP of the VAMPNet outputs);
- ``NAME_training.png``  VAMPNet validation VAMP-2 against optimizer steps, every restart.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .result import CompareResult

__all__ = ["markdown", "write_report"]


def _fmt(s: dict | None, digits: int = 3) -> str:
    if not s:
        return "-"
    return f"{s['mean']:.{digits}f} ± {s['sd']:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows)]


def _lag_label(d: dict) -> str:
    if d["ps"] is None:
        return f"{d['frames']} frames"
    return f"{d['text']} ({d['frames']} frames)" if d["text"].strip().isdigit() is False \
        else f"{d['frames']} frames = {d['ps']:g} ps"


def _split_unit(cfg: dict) -> str:
    if cfg["split"] != "block":
        return ""
    block = cfg.get("block")
    if block:
        ps = f" = {block['ps']:g} ps" if block.get("ps") is not None else ""
        return f" (blocks of at least {block['frames']} frames{ps}: {block['text']})"
    return f" ({cfg['n_blocks']} blocks per trajectory, fewer where they would hold no pair)"


def _parts_table(report: dict) -> list[str]:
    """Frames and trajectories of each part, per seed."""
    total = sum(report["data"]["frames"])
    rows = []
    for sp in report["splits"]:
        n = sp.get("trajectories", {})
        rows.append([str(sp["seed"]), *(
            f"{sp['frames'][p]} ({100 * sp['frames'][p] / max(total, 1):.0f} %)"
            + (f", {n[p]} traj." if p in n else "") for p in ("train", "validation", "test"))])
    return _table(["seed", "train frames", "validation frames", "test frames"], rows)


def _left_out(split: dict, data: dict) -> str:
    left = split.get("left_out", [])
    if not left:
        return "No frames left out: every trajectory holds pairs at the longest lag."
    n = sum(x["frames"] for x in left)
    names = ", ".join(f"`{Path(data['paths'][x['trajectory']]).name}` ({x['frames']})"
                      for x in left)
    return (f"**Left out** (in no part): {len(left)} trajectories, {n} frames "
            f"({100 * n / max(sum(data['frames']), 1):.1f} %), {left[0]['reason']}: {names}.")


def markdown(report: dict) -> str:
    """The report's tables as markdown."""
    cfg = report["settings"]
    rec = cfg["recipe"]
    dims = report["linear_dims"]
    data = report["data"]
    first = report["splits"][0]
    lines = [f"# geomfeat compare: {report['system']}", "",
             f"{sum(data['frames'])} frames in {len(data['paths'])} trajectories (stride "
             f"{data['stride']}, {data['dt_ps'] if data['dt_ps'] is not None else '?'} ps per "
             f"frame). Split by {cfg['split']}{_split_unit(cfg)}; seeds {cfg['seeds']}. "
             "**Test** VAMP-2, mean ± sd over seeds (constant function included: 1 = no "
             f"kinetic information; linear dimension k: at most 1 + k; VAMPNet with "
             f"{rec['n_states']} softmax states: at most {rec['n_states']}).", "",
             *_parts_table(report), "", _left_out(first, data), ""]
    if cfg["vampnet"]:
        lines += [f"VAMPNet recipe (all feature sets): lobe budget {rec['budget']} parameters, "
                  f"depth {rec['depth']}, token lobe {rec['token_lobe']}, batch "
                  f"{rec['batch_size']}, Adam lr {rec['lr']}, {rec['steps_per_epoch']} steps "
                  f"per epoch, at most {rec['max_epochs']} epochs, patience {rec['patience']}, "
                  f"lr × {rec['lr_factor']} after {rec['lr_patience']} epochs without "
                  f"improvement, {rec['restarts']} restarts, best by validation.", ""]
    for lag in report["lags"]:
        key = str(lag["frames"])
        lines += [f"## lag {_lag_label(lag)}", ""]
        header = ["feature set", "shape"] + [f"linear k={k}" for k in dims]
        if cfg["vampnet"]:
            header += ["VAMPNet", "VAMPNet (test refit)", "lobe (params)", "epochs (best)"]
        rows = []
        for name, fs in report["scores"].items():
            s = fs[key]
            row = [f"`{name}`", "×".join(map(str, report["feature_sets"][name]["frame_shape"]))]
            row += [_fmt(s["linear"]["summary"][str(k)]) for k in dims]
            if cfg["vampnet"]:
                v = s["vampnet"]
                per = v["per_seed"]
                ep = ", ".join(f"{r['runs'][r['restart']]['epochs']}"
                               f"({r['runs'][r['restart']]['best_epoch']})" for r in per)
                row += [_fmt(v["summary"]), _fmt(v["summary_test_refit"]),
                        f"{per[0]['kind']} ({per[0]['params']})", ep]
            rows.append(row)
        lines += [*_table(header, rows), ""]
    if report.get("comparison"):
        ref = cfg["reference"]
        lines += [f"## Paired comparison with `{ref}` (same splits, per-seed differences)", "",
                  f"Difference of test VAMP-2 (feature set − {ref}) per seed: mean ± sd, ratio "
                  "of the means, seeds won, two-sided paired t-test p and sign-test p. Linear: "
                  f"k = {dims[-1]}.", ""]
        header = ["feature set", "lag", "linear diff", "linear ratio", "wins", "t p"]
        if cfg["vampnet"]:
            header += ["VAMPNet diff", "VAMPNet ratio", "wins", "t p", "sign p"]
        rows = []
        for name, by_lag in report["comparison"].items():
            for lag in report["lags"]:
                c = by_lag[str(lag["frames"])]
                lin = c["linear"]
                row = [f"`{name}`", lag["text"], _fmt(lin["diff"]), f"{lin['ratio']:.3f}",
                       f"{lin['wins']}/{lin['n']}", f"{lin['t_p']:.2g}"]
                if cfg["vampnet"]:
                    v = c["vampnet"]
                    row += [_fmt(v["diff"]), f"{v['ratio']:.3f}", f"{v['wins']}/{v['n']}",
                            f"{v['t_p']:.2g}", f"{v['sign_p']:.2g}"]
                rows.append(row)
        lines += [*_table(header, rows), ""]
    t = report["timings"]
    emb = "; ".join(f"{m}: {e['seconds']:.0f} s" + (" (cache)" if e["seconds"] == 0 else "")
                    for m, e in report["embedding"].items())
    lines += ["## Cost", "", f"{report['host']['cpus']} CPUs, device {cfg['device']}, "
              f"{cfg['threads']} torch thread(s): features {t['features_s']:.0f} s"
              + (f" (embedding {emb})" if emb else "") + f", scoring {t['scoring_s']:.0f} s, "
              f"total {t['total_s']:.0f} s.", ""]
    if report.get("command"):
        lines += ["```sh", report["command"], "```", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# plots: each _X_figure builds a matplotlib Figure (tests read its labels), _X_plot saves it
# --------------------------------------------------------------------------------------------

_MODEL_NAMES = {"linear": "linear VAMP", "vampnet": "VAMPNet"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, dpi: int) -> None:
    fig.savefig(path, dpi=dpi)
    _plt().close(fig)


def _lag_text(d: dict) -> str:
    """``10 ps`` when the time step is known, else ``3 frames``."""
    return f"{d['ps']:g} ps" if d.get("ps") is not None else f"{d['frames']} frames"


def _legend_outside(fig, handles: list, labels: list[str]):
    """One legend for the figure, right of the panels (constrained layout keeps it off them)."""
    return fig.legend(handles, labels, loc="outside right upper", fontsize=7, frameon=False)


def _scores_figure(report: dict):
    plt = _plt()
    names = list(report["scores"])
    lags = report["lags"]
    kmax = str(report["linear_dims"][-1])
    n_seeds = len(report["splits"])
    models = [("linear", f"linear VAMP (k = {kmax})")]
    if report["settings"]["vampnet"]:
        n_states = report["settings"]["recipe"]["n_states"]
        models.append(("vampnet", f"VAMPNet ({n_states} states)"))
    fig, axes = plt.subplots(1, len(models) * len(lags), figsize=(3.2 * len(models) * len(lags)
                                                                   + 1.5, 0.35 * len(names) + 2),
                             sharey=True, squeeze=False, layout="constrained")
    col = 0
    for model, title in models:
        for lag in lags:
            ax = axes[0, col]
            col += 1
            key = str(lag["frames"])
            means, sds, pts = [], [], []
            for n in names:
                s = report["scores"][n][key][model]["summary"]
                s = s[kmax] if model == "linear" else s
                means.append(s["mean"])
                sds.append(s["sd"])
                pts.append(s["values"])
            y = np.arange(len(names))
            ax.barh(y, means, xerr=sds, color=[f"C{i % 10}" for i in range(len(names))],
                    alpha=0.7, capsize=3)
            for i, v in enumerate(pts):
                ax.plot(v, [i] * len(v), "k.", ms=3)
            ax.set_title(f"{title}\nlag {_lag_text(lag)}", fontsize=8)
            ax.set_xlabel("test VAMP-2", fontsize=8)
            lo = min(min(p) for p in pts)
            ax.set_xlim(left=max(0.0, min(1.0, lo) - 0.05))
            ax.tick_params(labelsize=7)
    axes[0, 0].set_yticks(np.arange(len(names)), names, fontsize=7)
    axes[0, 0].set_ylabel("feature set", fontsize=8)
    axes[0, 0].invert_yaxis()
    fig.suptitle(f"Test VAMP-2 (higher is better): bars mean ± sd over {n_seeds} seeds, "
                 "dots single seeds", fontsize=9)
    return fig


def _scores_plot(report: dict, path: Path) -> None:
    _save(_scores_figure(report), path, dpi=80)


def _its_figure(result: CompareResult):
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    from .linear import implied_timescales

    plt = _plt()
    report, outs = result.report, result.outputs
    dt = outs.get("dt_ps") or 1.0
    unit = "ps" if outs.get("dt_ps") else "frames"
    first = str(report["lags"][0]["frames"])
    max_lag = max(d["frames"] for d in report["lags"])
    its_lags = sorted({max(1, round(x)) for x in np.geomspace(1, 2 * max_lag, 8)})
    models = ["linear"] + (["vampnet"] if report["settings"]["vampnet"] else [])
    seed = report["splits"][0]["seed"]
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models) + 2.6, 4),
                             squeeze=False, sharey=True, layout="constrained")
    handles: dict[str, Line2D] = {}
    for ax, model in zip(axes[0], models, strict=True):
        for i, (name, o) in enumerate(outs["sets"].items()):
            if first not in o or model not in o[first]:
                continue
            x = o[first][model]
            if model == "vampnet":
                x = [c[:, :-1] for c in x]  # softmax outputs sum to 1: drop one
            ts = implied_timescales(x, its_lags)
            (handles[name],) = ax.semilogy(np.array(its_lags) * dt, ts[:, 0] * dt, "-o", ms=3,
                                           color=f"C{i % 10}")
            ax.semilogy(np.array(its_lags) * dt, ts[:, 1] * dt, "--", lw=1, color=f"C{i % 10}")
        lag_axis = np.array(its_lags) * dt
        ax.fill_between(lag_axis, dt * 0.5, lag_axis, color="0.85", zorder=0)
        ax.set_xlabel(f"TICA lag time ({unit})")
        ax.set_title(f"TICA of the seed-{seed} {_MODEL_NAMES[model]} outputs\n"
                     f"(model trained at lag {_lag_text(report['lags'][0])})", fontsize=8)
    axes[0, 0].set_ylabel(f"implied timescale ({unit})")
    plain = FuncFormatter(lambda v, _: f"{v:g}")  # 20, not 2×10¹
    axes[0, 0].yaxis.set_major_formatter(plain)
    axes[0, 0].yaxis.set_minor_formatter(plain)
    style = [Line2D([], [], color="k", ls="-", marker="o", ms=3),
             Line2D([], [], color="k", ls="--", lw=1), Patch(color="0.85")]
    _legend_outside(fig, [*handles.values(), *style],
                    [*handles, "slowest process", "2nd slowest process",
                     "timescale < lag time:\nnot resolved"])
    fig.suptitle("Implied timescales of the two slowest processes", fontsize=9)
    return fig


def _its_plot(result: CompareResult, path: Path) -> None:
    _save(_its_figure(result), path, dpi=80)


def _fes_figure(result: CompareResult):
    from .linear import vamp_fit

    plt = _plt()
    report, outs = result.report, result.outputs
    lag = report["lags"][0]
    first = lag["frames"]
    models = ["linear"] + (["vampnet"] if report["settings"]["vampnet"] else [])
    rows = {"linear": "linear VAMP of the features", "vampnet": "VAMP of the VAMPNet outputs"}
    names = list(outs["sets"])
    fig, axes = plt.subplots(len(models), len(names), figsize=(2.6 * len(names) + 1.2,
                                                               2.5 * len(models) + 0.9),
                             squeeze=False, layout="constrained")
    im = None
    for r, model in enumerate(models):
        for c, name in enumerate(names):
            ax = axes[r, c]
            ax.set_title(f"{_MODEL_NAMES[model]}: {name}", fontsize=7)
            o = outs["sets"][name].get(str(first), {})
            xy = None
            if model in o:
                x = o[model]
                if model == "vampnet":
                    m = vamp_fit(x, first)
                    x = [m.transform(c_) for c_ in x]
                xy = np.concatenate(x)
            if xy is None or xy.shape[1] < 2:
                ax.text(0.5, 0.5, "fewer than two\ncomponents", ha="center", va="center",
                        fontsize=7, transform=ax.transAxes)
                ax.set_xticks([])
                ax.set_yticks([])
                continue
            h, xe, ye = np.histogram2d(xy[:, 0], xy[:, 1], bins=50)
            with np.errstate(divide="ignore"):
                f = -np.log(h / h.sum())
            f[~np.isfinite(f)] = np.nan
            f -= np.nanmin(f)
            im = ax.imshow(f.T, origin="lower", extent=(xe[0], xe[-1], ye[0], ye[-1]),
                           aspect="auto", cmap="nipy_spectral", vmin=0, vmax=9)
            ax.set_xlabel("VAMP component 1", fontsize=7)
            ax.set_ylabel("VAMP component 2", fontsize=7)
            ax.tick_params(labelsize=6)
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.6).set_label("free energy (kT)", fontsize=8)
    fig.suptitle(f"Free energy −ln p on the first two VAMP components at lag {_lag_text(lag)}"
                 f" (seed-{report['splits'][0]['seed']} models, all frames)\n"
                 + "; ".join(f"row {i + 1}: {rows[m]}" for i, m in enumerate(models))
                 + "; white: no frames", fontsize=8)
    return fig


def _fes_plot(result: CompareResult, path: Path) -> None:
    _save(_fes_figure(result), path, dpi=80)


def _training_figure(report: dict):
    from matplotlib.lines import Line2D

    plt = _plt()
    lags = report["lags"]
    spe = report["settings"]["recipe"]["steps_per_epoch"]
    fig, axes = plt.subplots(1, len(lags), figsize=(4.5 * len(lags) + 2.6, 3.6), squeeze=False,
                             layout="constrained")
    handles: dict[str, Line2D] = {}
    for ax, lag in zip(axes[0], lags, strict=True):
        for i, (name, fs) in enumerate(report["scores"].items()):
            for run in fs[str(lag["frames"])]["vampnet"]["per_seed"]:
                for k, r in enumerate(run["runs"]):
                    steps = spe * np.arange(1, len(r["val_curve"]) + 1)
                    chosen = k == run["restart"]
                    ax.plot(steps, r["val_curve"], color=f"C{i % 10}",
                            lw=1.2 if chosen else 0.5, alpha=0.9 if chosen else 0.4)
                    handles.setdefault(name, Line2D([], [], color=f"C{i % 10}", lw=1.2))
                    ax.plot(spe * r["best_epoch"], r["val_vamp2"], "o", ms=2.5,
                            color=f"C{i % 10}")
        ax.set_xlabel("optimizer steps")
        ax.set_ylabel("validation VAMP-2")
        ax.set_title(f"lag {_lag_text(lag)}", fontsize=8)
    style = [Line2D([], [], color="k", lw=1.2), Line2D([], [], color="k", lw=0.5, alpha=0.4),
             Line2D([], [], color="k", ls="", marker="o", ms=3)]
    _legend_outside(fig, [*handles.values(), *style],
                    [*handles, "chosen restart", "other restarts", "best epoch (kept)"])
    fig.suptitle("VAMPNet training: validation VAMP-2 of every seed and restart", fontsize=9)
    return fig


def _training_plot(report: dict, path: Path) -> None:
    _save(_training_figure(report), path, dpi=80)


def write_report(result: CompareResult, out: Path, name: str) -> list[Path]:
    """Write the JSON, markdown and plots of ``result`` into folder ``out``; returns the paths.

    Files are written to a temporary name and renamed, so a report is never half written.
    """
    out.mkdir(parents=True, exist_ok=True)
    report = result.report
    files = []

    def put_text(path: Path, text: str) -> None:
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        files.append(path)

    def put_plot(path: Path, draw) -> None:
        tmp = path.with_name(path.stem + f".{os.getpid()}.tmp.png")
        draw(tmp)
        tmp.replace(path)
        files.append(path)

    plots = {"scores": lambda p: _scores_plot(report, p),
             "its": lambda p: _its_plot(result, p),
             "fes": lambda p: _fes_plot(result, p)}
    if report["settings"]["vampnet"]:
        plots["training"] = lambda p: _training_plot(report, p)
    report["plots"] = [f"{name}_{k}.png" for k in plots]
    put_text(out / f"{name}.json", json.dumps(report, indent=1, default=float) + "\n")
    put_text(out / f"{name}.md", markdown(report) + "\n"
             + "".join(f"![{k}]({name}_{k}.png)\n\n" for k in plots))
    for k, draw in plots.items():
        put_plot(out / f"{name}_{k}.png", draw)
    return files
