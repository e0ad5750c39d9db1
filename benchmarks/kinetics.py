"""Zero-shot kinetics benchmark: geomfeat embeddings against classical features, scored by VAMP-2.

For a topology and one or more trajectories it builds these feature sets, on the same frames:

- ``<model>:graph``      geomfeat graph embeddings ``(T, 64)`` of every ``--models`` encoder;
- ``<model>:residue``    geomfeat residue tokens ``(T, R, 64)``;
- ``distances``          all pairwise distances between the ``--distance-select`` atoms
                         (default: every heavy atom), in nm;
- ``torsions``           sin and cos of every backbone phi and psi (left out when the topology
                         has none).

and scores them, for every lag time and seed (the seed draws the train/validation split and
initialises the network):

- **linear VAMP**: :class:`deeptime.decomposition.VAMP` fitted on the training part and scored
  (VAMP-2, including the constant singular function, so at most ``1 + dim``) on the validation
  part, for each ``--linear-dims`` output dimension. Token sets are flattened ``(T, R * 64)``.
- **VAMPNet**: :class:`deeptime.decomposition.deep.VAMPNet` with ``--n-states`` softmax outputs
  (VAMP-2 at most ``n_states``; the linear model with ``dim = n_states - 1`` has the same
  ceiling). Vector features get :class:`geomfeat.deeptime.MLPLobe`, token sets the
  :class:`~geomfeat.deeptime.MixerLobe` and the :class:`~geomfeat.deeptime.AttentionLobe`. Every
  lobe's width is chosen so that it has ``--budget`` trainable parameters (as close as the width
  allows; the counts are reported). Adam, learning rate ``--lr`` halved when the validation score
  has not improved for ``--lr-patience`` epochs, early stopping after ``--patience`` epochs
  without improvement (at most ``--max-epochs``); the weights of the best validation epoch are
  kept and their validation VAMP-2 (one batch: the whole validation part) is reported.

Every feature is standardised with the mean and standard deviation of the training part (the
same treatment for all sets; linear VAMP scores do not depend on it). Splits: ``--split block``
cuts every trajectory into ``--n-blocks`` contiguous blocks and puts a random ``--val-fraction``
of them in validation; ``--split trajectory`` holds out whole trajectories. Time-lagged pairs
never cross a trajectory or block edge. No hyper-parameter is tuned per feature set.

Outputs (``--out``/``--name``): ``NAME.json`` (settings, seeds, splits, parameter counts, every
score, epochs, timings), ``NAME.md`` (tables), ``NAME_its.png`` (implied timescales against lag
time of TICA on each feature set and of TICA on the VAMPNet outputs), ``NAME_fes.png``
(free energy on the first two TICA coordinates of each feature set and the first two VAMP
coordinates of each VAMPNet's outputs). Embeddings are cached as ``.npy`` under ``--cache``.

Examples
--------
CPU, the alanine-dipeptide data of ``../shared/data/ala2`` (1 ps per frame, 10 ps after
striding)::

    python benchmarks/kinetics.py --top ../shared/data/ala2/ala2.pdb \\
        --trajs ../shared/data/ala2/ala2_r0.xtc ../shared/data/ala2/ala2_r1.xtc \\
        --stride 10 --lags 1 5 10 --models visnet-denali --name kinetics_ala2

GPU: add ``--device cuda`` (embedding and VAMPNet training).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import matplotlib
import mdtraj as md
import numpy as np
import torch
from deeptime.decomposition import TICA, VAMP
from deeptime.decomposition.deep import VAMPNet

import geomfeat
from geomfeat import GeomFeaturizer
from geomfeat.deeptime import (
    AttentionLobe,
    MixerLobe,
    MLPLobe,
    count_parameters,
    data_loader,
    train_val_split,
    width_for_budget,
)

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--top", required=True, help="topology (PDB, ...) mdtraj reads")
    p.add_argument("--trajs", nargs="+", required=True, help="trajectory files")
    p.add_argument("--models", nargs="+", default=["visnet-denali"])
    p.add_argument("--select", default="heavy", help="geomfeat atom selection")
    p.add_argument("--reduce", default="sum", choices=["sum", "mean"])
    p.add_argument("--distance-select", default="heavy",
                   help="mdtraj selection of the atoms whose pairwise distances form a feature "
                        "set ('heavy' = every non-hydrogen atom)")
    p.add_argument("--stride", type=int, default=1, help="read every n-th frame")
    p.add_argument("--dt-ps", type=float, default=None,
                   help="time between strided frames in ps (default: the trajectory's time "
                        "step × stride)")
    p.add_argument("--lags", type=int, nargs="+", default=[1, 5, 10],
                   help="lag times in (strided) frames")
    p.add_argument("--its-lags", type=int, nargs="+", default=None,
                   help="lag times (frames) of the implied-timescale plot (default: 1..3×max lag)")
    p.add_argument("--fes-lag", type=int, default=None,
                   help="lag (frames) of the plotted TICA/VAMPNet coordinates "
                        "(default: the middle lag)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--split", choices=["block", "trajectory"], default="block")
    p.add_argument("--n-blocks", type=int, default=10, help="blocks per trajectory")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--linear-dims", type=int, nargs="+", default=None,
                   help="output dimensions of linear VAMP (default: 1, 2, n_states - 1)")
    p.add_argument("--n-states", type=int, default=5, help="VAMPNet softmax outputs")
    p.add_argument("--budget", type=int, default=20000, help="trainable parameters per lobe")
    p.add_argument("--depth", type=int, default=2, help="hidden layers / mixer blocks / "
                                                        "encoder layers of every lobe")
    p.add_argument("--heads", type=int, default=4, help="attention heads")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--max-epochs", type=int, default=200)
    p.add_argument("--patience", type=int, default=15, help="early-stopping patience (epochs)")
    p.add_argument("--lr-patience", type=int, default=5, help="epochs before halving the lr")
    p.add_argument("--lobes", nargs="+", default=["mlp", "mixer", "attention"],
                   choices=["mlp", "mixer", "attention"])
    p.add_argument("--no-vampnet", action="store_true", help="linear VAMP only")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--embed-batch-size", type=int, default=None)
    p.add_argument("--cache", default=os.environ.get("KINETICS_CACHE", "/tmp/kinetics-cache"))
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    p.add_argument("--name", default="kinetics")
    return p.parse_args(argv)


def log(*args: object) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *args, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------------------------

def file_key(paths: list[str], **settings: object) -> str:
    items = [(str(Path(p).resolve()), os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in paths]
    return hashlib.sha1(json.dumps([items, settings], sort_keys=True, default=str)
                        .encode()).hexdigest()[:12]


def heavy_or_select(top: md.Topology, select: str) -> np.ndarray:
    if select == "heavy":
        return np.array([a.index for a in top.atoms
                         if a.element is None or a.element.number != 1])
    return top.select(select)


def load_trajectories(args: argparse.Namespace) -> list[md.Trajectory]:
    trajs = []
    for path in args.trajs:
        t0 = time.perf_counter()
        trajs.append(md.load(path, top=args.top, stride=args.stride))
        log(f"read {path}: {trajs[-1].n_frames} frames (stride {args.stride}) "
            f"in {time.perf_counter() - t0:.1f} s")
    return trajs


def embed(args: argparse.Namespace, trajs: list[md.Trajectory], model: str,
          timings: dict) -> dict[str, list[np.ndarray]]:
    """geomfeat graph embeddings and residue tokens of every trajectory, cached as .npy files.

    One encoder pass per trajectory: per-atom embeddings are streamed batch by batch and pooled
    into both the graph vector and the residue tokens with geomfeat's own pooling (identical to
    ``pool="graph"`` / ``pool="residue"``).
    """
    from geomfeat.pooling import pool_atoms

    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    out: dict[str, list[np.ndarray]] = {"graph": [], "residue": []}
    for path, traj in zip(args.trajs, trajs, strict=True):
        key = file_key([path, args.top], model=model, select=args.select, reduce=args.reduce,
                       stride=args.stride, version=geomfeat.__version__)
        files = {pool: cache / f"{Path(path).stem}_{model}_{pool}_{key}.npy" for pool in out}
        if all(f.exists() for f in files.values()):
            for pool, f in files.items():
                out[pool].append(np.load(f))
            continue
        featurizer = GeomFeaturizer(model, select=args.select, pool="atom", reduce=args.reduce,
                                    device=args.device, batch_size=args.embed_batch_size)
        reader = featurizer.reader(traj)
        residues = torch.as_tensor(reader.residues)
        n_res = len(reader.residue_labels)
        t0 = time.perf_counter()
        parts: dict[str, list[np.ndarray]] = {"graph": [], "residue": []}
        for _, atoms in featurizer.iter_embeddings(reader, reader.frame_indices(None, None,
                                                                                None)):
            atoms = torch.from_numpy(atoms)
            parts["graph"].append(pool_atoms(atoms, "graph", args.reduce).numpy())
            parts["residue"].append(pool_atoms(atoms, "residue", args.reduce, residues,
                                               n_res).numpy())
        seconds = time.perf_counter() - t0
        timings[f"embed {model} {Path(path).name}"] = {
            "seconds": round(seconds, 1), "frames": int(traj.n_frames),
            "frames_per_s": round(traj.n_frames / seconds, 1)}
        for pool, f in files.items():
            emb = np.concatenate(parts[pool]).astype(np.float32)
            tmp = f.with_suffix(".tmp.npy")
            np.save(tmp, emb)
            tmp.replace(f)
            out[pool].append(emb)
        log(f"embedded {path} with {model}: graph {out['graph'][-1].shape}, residue "
            f"{out['residue'][-1].shape} in {seconds:.0f} s ({traj.n_frames / seconds:.0f} "
            "frames/s)")
    return out


def classical_features(args: argparse.Namespace,
                       trajs: list[md.Trajectory]) -> dict[str, dict]:
    top = trajs[0].topology
    sets: dict[str, dict] = {}
    atoms = heavy_or_select(top, args.distance_select)
    pairs = np.array([(i, j) for k, i in enumerate(atoms) for j in atoms[k + 1:]])
    if len(pairs):
        sets["distances"] = {
            "data": [md.compute_distances(t, pairs).astype(np.float32) for t in trajs],
            "description": f"{len(pairs)} pairwise distances of {len(atoms)} atoms "
                           f"({args.distance_select})"}
    phi_ix, _ = md.compute_phi(trajs[0])
    psi_ix, _ = md.compute_psi(trajs[0])
    if len(phi_ix) + len(psi_ix):
        data = []
        for t in trajs:
            angles = np.concatenate([md.compute_phi(t)[1], md.compute_psi(t)[1]], axis=1)
            data.append(np.concatenate([np.sin(angles), np.cos(angles)], 1).astype(np.float32))
        sets["torsions"] = {"data": data,
                            "description": f"sin/cos of {len(phi_ix)} phi and {len(psi_ix)} "
                                           "psi backbone torsions"}
    else:
        log("no backbone phi/psi in the topology: the torsion feature set is left out")
    return sets


# --------------------------------------------------------------------------------------------
# scoring
# --------------------------------------------------------------------------------------------

def standardize(parts_train: list[np.ndarray], arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Standardise every feature with the mean/sd of the training frames."""
    stack = np.concatenate(parts_train)
    mean = stack.mean(0, dtype=np.float64)
    sd = stack.std(0, dtype=np.float64)
    sd[sd < 1e-8] = 1.0
    return [((a - mean) / sd).astype(np.float32) for a in arrays]


def segments(trajs: list[np.ndarray], parts: list[list[int]]) -> list[np.ndarray]:
    return [trajs[i][a:b] for i, a, b in parts]


def linear_scores(train: list[np.ndarray], val: list[np.ndarray], lag: int,
                  dims: list[int]) -> dict[str, float]:
    flat = lambda xs: [x.reshape(len(x), -1).astype(np.float64) for x in xs]  # noqa: E731
    model = VAMP(lagtime=lag).fit(flat(train)).fetch_model()
    test = VAMP(lagtime=lag).fit(flat(val)).fetch_model()
    return {str(k): float(model.score(r=2, test_model=test, dim=k)) for k in dims}


def make_lobe(kind: str, shape: tuple[int, ...], args: argparse.Namespace
              ) -> tuple[torch.nn.Module, int]:
    """Lobe of ``kind`` for frames of ``shape`` with about ``args.budget`` parameters."""
    n, depth = args.n_states, args.depth
    if kind == "mlp":
        d = int(np.prod(shape))
        factory = lambda w: MLPLobe(d, n, width=w, depth=depth)  # noqa: E731
        step = 1
    elif kind == "mixer":
        r, d = shape
        factory = lambda w: MixerLobe(r, d, n, width=w, depth=depth)  # noqa: E731
        step = 1
    else:
        r, d = shape
        factory = lambda w: AttentionLobe(d, n, n_tokens=r, width=w, depth=depth,  # noqa: E731
                                          heads=args.heads)
        step = args.heads
    width = width_for_budget(factory, args.budget, step=step)
    return factory(width), width


def train_vampnet(lobe: torch.nn.Module, train_ds, val_ds, args: argparse.Namespace,
                  seed: int) -> dict:
    """Train until the validation VAMP-2 stops improving; keep the best weights."""
    lobe = lobe.to(args.device)
    vnet = VAMPNet(lobe=lobe, learning_rate=args.lr, device=args.device)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        vnet.optimizer, mode="max", factor=0.5, patience=args.lr_patience, min_lr=1e-5)
    train_loader = data_loader(train_ds, args.batch_size, shuffle=True, seed=seed)
    val_loader = data_loader(val_ds, len(val_ds))
    best, best_epoch, best_state, curve = -np.inf, 0, None, []
    t0 = time.perf_counter()
    epoch = 0
    for epoch in range(1, args.max_epochs + 1):
        vnet.fit(train_loader, n_epochs=1, validation_loader=val_loader)
        score = float(vnet.validation_scores[-1][1])
        curve.append(round(score, 5))
        sched.step(score)
        if score > best + 1e-4:
            best, best_epoch = score, epoch
            best_state = copy.deepcopy(lobe.state_dict())
        elif epoch - best_epoch >= args.patience:
            break
    lobe.load_state_dict(best_state)
    return {"vamp2": best, "best_epoch": best_epoch, "epochs": epoch,
            "stopped_early": epoch < args.max_epochs,
            "final_lr": vnet.optimizer.param_groups[0]["lr"],
            "seconds": round(time.perf_counter() - t0, 1), "val_curve": curve,
            "model": vnet.fetch_model()}


def summary(values: list[float]) -> dict:
    a = np.asarray(values, float)
    return {"mean": float(a.mean()), "sd": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
            "n": len(a)}


def implied_timescales(trajs: list[np.ndarray], lags: list[int], k: int = 2) -> np.ndarray:
    """TICA implied timescales (frames) of the ``k`` slowest processes at each lag."""
    out = np.full((len(lags), k), np.nan)
    for i, lag in enumerate(lags):
        flat = [t.reshape(len(t), -1).astype(np.float64) for t in trajs]
        ts = TICA(lagtime=lag).fit(flat).fetch_model().timescales(lagtime=lag)
        ts = ts[np.isfinite(ts) & (ts > 0)][:k]
        out[i, :len(ts)] = ts
    return out


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------

def fmt(s: dict) -> str:
    return f"{s['mean']:.3f} ± {s['sd']:.3f}"


def markdown(report: dict) -> str:
    cfg = report["settings"]
    lines = [f"# Kinetics benchmark: {report['system']}", "",
             f"{report['frames_total']} frames in {len(cfg['trajs'])} trajectories, "
             f"{report['dt_ps']:g} ps per frame (stride {cfg['stride']}); split by "
             f"{cfg['split']} ({cfg['n_blocks']} blocks per trajectory, validation fraction "
             f"{cfg['val_fraction']}); seeds {cfg['seeds']}; mean ± sd over seeds. VAMP-2 "
             f"includes the constant function (linear dim k: at most 1 + k; VAMPNet with "
             f"{cfg['n_states']} softmax states: at most {cfg['n_states']}).", ""]
    dims = report["linear_dims"]
    for lag in cfg["lags"]:
        lines += [f"## lag {lag} frames = {lag * report['dt_ps']:g} ps", "",
                  "| feature set | dims | " + " | ".join(f"linear VAMP-2, k={k}" for k in dims)
                  + " | VAMPNet lobe (params) | VAMPNet VAMP-2 | epochs (best) |",
                  "| --- | --- | " + " | ".join("---" for _ in dims) + " | --- | --- | --- |"]
        for name, fs in report["feature_sets"].items():
            lin = fs["linear"][str(lag)]
            first = True
            for lobe, res in (fs.get("vampnet") or {"-": None}).items():
                lin_cells = (" | ".join(fmt(lin["summary"][str(k)]) for k in dims) if first
                             else " | ".join("" for _ in dims))
                if res is None:
                    net = "- | - | -"
                else:
                    r = res[str(lag)]
                    ep = ", ".join(f"{e}({b})" for e, b in zip(r["epochs"], r["best_epoch"],
                                                               strict=True))
                    net = f"{lobe} ({res['params']}) | {fmt(r['summary'])} | {ep}"
                shape = "×".join(map(str, fs["frame_shape"]))
                lines.append(f"| {name if first else ''} | {shape if first else ''} | "
                             f"{lin_cells} | {net} |")
                first = False
        lines.append("")
    if report.get("gain"):
        lines += ["## VAMPNet VAMP-2 of embeddings relative to pairwise distances", "",
                  "| embedding (lobe) | lag | embedding | distances | gain |",
                  "| --- | --- | --- | --- | --- |"]
        for g in report["gain"]:
            lines.append(f"| {g['feature_set']} ({g['lobe']}) | {g['lag']} "
                         f"({g['lag'] * report['dt_ps']:g} ps) | {g['embedding']:.3f} | "
                         f"{g['distances']:.3f} | {100 * g['gain']:+.1f} % |")
        lines.append("")
    t = report["timings"]
    cached = "" if any(k.startswith("embed ") for k in t) else ": read from the cache"
    lines += ["## Cost", "", f"device {cfg['device']}, {report['host']['cpus']} CPUs; total "
              f"{t['total_s']:.0f} s (embedding {t['embedding_s']:.0f} s{cached}, VAMPNet training "
              f"{t['vampnet_s']:.0f} s).", "", "Command:", "", "```sh", report["command"],
              "```", ""]
    return "\n".join(lines)


def plots(report: dict, its: dict, fes: dict, out: Path, name: str) -> list[str]:
    dt = report["dt_ps"]
    files = []
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, group, title in ((axes[0], "tica", "TICA on features"),
                             (axes[1], "vampnet", "TICA on VAMPNet outputs")):
        for k, (label, (lags, ts)) in enumerate(its[group].items()):
            color = f"C{k % 10}"
            lag_ps = np.asarray(lags) * dt
            ax.semilogy(lag_ps, ts[:, 0] * dt, "-o", ms=3, color=color, label=label)
            ax.semilogy(lag_ps, ts[:, 1] * dt, "--", color=color, lw=1)
        if its[group]:
            lag_ps = np.asarray(next(iter(its[group].values()))[0]) * dt
            ax.fill_between(lag_ps, lag_ps[0] * 0 + 1e-3, lag_ps, color="0.85")
        ax.set_xlabel("lag time (ps)")
        ax.set_title(title + " (solid: 1st, dashed: 2nd)", fontsize=9)
        if its[group]:
            ax.legend(fontsize=7)
    axes[0].set_ylabel("implied timescale (ps)")
    axes[0].set_ylim(bottom=dt)
    fig.tight_layout()
    path = out / f"{name}_its.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    files.append(path.name)

    ncol = max(len(fes["tica"]), len(fes["vampnet"]), 1)
    fig, axes = plt.subplots(2, ncol, figsize=(2.4 * ncol + 0.8, 5.0), squeeze=False)
    im = None
    for row, group, axis_name in ((0, "tica", "TICA IC"), (1, "vampnet", "VAMPNet coord.")):
        items = list(fes[group].items())
        for col in range(ncol):
            ax = axes[row, col]
            if col >= len(items):
                ax.axis("off")
                continue
            label, xy = items[col]
            h, xe, ye = np.histogram2d(xy[:, 0], xy[:, 1], bins=50)
            with np.errstate(divide="ignore"):
                f = -np.log(h / h.sum())
            f[~np.isfinite(f)] = np.nan
            f -= np.nanmin(f)
            im = ax.imshow(f.T, origin="lower", extent=(xe[0], xe[-1], ye[0], ye[-1]),
                           aspect="auto", cmap="nipy_spectral", vmin=0, vmax=9)
            ax.set_title(("TICA: " if row == 0 else "VAMPNet: ") + label, fontsize=7)
            ax.set_xlabel(f"{axis_name} 1", fontsize=7)
            ax.set_ylabel(f"{axis_name} 2", fontsize=7)
            ax.tick_params(labelsize=6)
    fig.tight_layout(rect=(0, 0, 1 - 0.5 / fig.get_figwidth(), 1))
    if im is not None:
        cax = fig.add_axes((1 - 0.42 / fig.get_figwidth(), 0.25, 0.1 / fig.get_figwidth(), 0.5))
        fig.colorbar(im, cax=cax).set_label("free energy (kT)", fontsize=7)
        cax.tick_params(labelsize=6)
    path = out / f"{name}_fes.png"
    fig.savefig(path, dpi=70)
    plt.close(fig)
    files.append(path.name)
    return files


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dims = args.linear_dims or sorted({1, 2, max(1, args.n_states - 1)})
    fes_lag = args.fes_lag or args.lags[len(args.lags) // 2]
    its_lags = args.its_lags or sorted({max(1, round(x)) for x in
                                        np.geomspace(1, 3 * max(args.lags), 8)})
    timings: dict = {}

    trajs = load_trajectories(args)
    dt_ps = args.dt_ps or float(trajs[0].timestep)  # mdtraj's timestep includes the stride
    log(f"time between frames: {dt_ps:g} ps")

    feature_sets: dict[str, dict] = {}
    t0 = time.perf_counter()
    for model in args.models:
        for pool, data in embed(args, trajs, model, timings).items():
            feature_sets[f"{model}:{pool}"] = {
                "data": data, "description": f"geomfeat {model}, select={args.select}, "
                                             f"pool={pool}, reduce={args.reduce}"}
    embedding_s = time.perf_counter() - t0
    feature_sets.update(classical_features(args, trajs))

    lengths = [t.n_frames for t in trajs]
    splits = {}
    for lag in args.lags:
        for seed in args.seeds:
            _, _, info = train_val_split([np.zeros((n, 1), np.float32) for n in lengths], lag,
                                         by=args.split, val_fraction=args.val_fraction,
                                         n_blocks=args.n_blocks, seed=seed)
            splits[(lag, seed)] = info

    report: dict = {
        "system": Path(args.top).stem, "command": " ".join(
            ["python", "benchmarks/kinetics.py", *(argv if argv is not None else sys.argv[1:])]),
        "settings": {k: v for k, v in vars(args).items()},
        "dt_ps": dt_ps, "frames_per_trajectory": lengths, "frames_total": int(sum(lengths)),
        "linear_dims": dims, "fes_lag": fes_lag, "its_lags": its_lags,
        "host": {"platform": platform.platform(), "python": platform.python_version(),
                 "torch": torch.__version__, "cpus": os.cpu_count(),
                 "torch_threads": torch.get_num_threads(),
                 "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                 "geomfeat": geomfeat.__version__},
        "splits": [{"lag": lag, "seed": seed, **info} for (lag, seed), info in splits.items()],
        "feature_sets": {}}
    its: dict = {"tica": {}, "vampnet": {}}
    fes: dict = {"tica": {}, "vampnet": {}}
    vampnet_s = 0.0

    for name, fs in feature_sets.items():
        data = fs["data"]
        shape = tuple(data[0].shape[1:])
        entry = {"description": fs["description"], "frame_shape": list(shape),
                 "linear": {}, "vampnet": {}}
        log(f"feature set {name}: frames {shape}")
        # implied timescales and FES of TICA on the (globally standardised) features
        z = standardize(data, data)
        its["tica"][name] = (its_lags, implied_timescales(z, its_lags))
        flat = [x.reshape(len(x), -1) for x in z]
        tica = TICA(lagtime=fes_lag, dim=2).fit(flat).fetch_model()
        fes["tica"][name] = np.concatenate([tica.transform(x) for x in flat])
        lobes = (["mlp"] if len(shape) == 1 else [k for k in args.lobes if k != "mlp"])
        lobes = [k for k in lobes if k in args.lobes]
        for lag in args.lags:
            lin_runs = []
            for seed in args.seeds:
                info = splits[(lag, seed)]
                zs = standardize(segments(data, info["train"]), data)
                tr, va = segments(zs, info["train"]), segments(zs, info["validation"])
                lin_runs.append(linear_scores(tr, va, lag, dims))
            entry["linear"][str(lag)] = {
                "per_seed": lin_runs,
                "summary": {str(k): summary([r[str(k)] for r in lin_runs]) for k in dims}}
            log(f"  lag {lag}: linear VAMP-2 " + ", ".join(
                f"k={k} {fmt(entry['linear'][str(lag)]['summary'][str(k)])}" for k in dims))
        if args.no_vampnet:
            entry["vampnet"] = None
            report["feature_sets"][name] = entry
            continue
        for kind in lobes:
            res: dict = {}
            for lag in args.lags:
                runs = []
                for seed in args.seeds:
                    info = splits[(lag, seed)]
                    zs = standardize(segments(data, info["train"]), data)
                    train_ds, val_ds, _ = train_val_split(
                        zs, lag, by=args.split, val_fraction=args.val_fraction,
                        n_blocks=args.n_blocks, seed=seed)
                    torch.manual_seed(seed)
                    lobe, width = make_lobe(kind, shape, args)
                    run = train_vampnet(lobe, train_ds, val_ds, args, seed)
                    vampnet_s += run["seconds"]
                    model = run.pop("model")
                    run["seed"] = seed
                    runs.append(run)
                    if lag == fes_lag and seed == args.seeds[0]:
                        chi = [model.transform(x) for x in zs]
                        its["vampnet"][f"{name} {kind}"] = (its_lags,
                                                            implied_timescales(chi, its_lags))
                        vamp = VAMP(lagtime=lag, dim=2).fit(chi).fetch_model()
                        fes["vampnet"][f"{name} {kind}"] = np.concatenate(
                            [vamp.transform(c) for c in chi])
                res[str(lag)] = {"runs": runs, "summary": summary([r["vamp2"] for r in runs]),
                                 "epochs": [r["epochs"] for r in runs],
                                 "best_epoch": [r["best_epoch"] for r in runs]}
                log(f"  lag {lag}: VAMPNet {kind} (width {width}, "
                    f"{count_parameters(lobe)} params) {fmt(res[str(lag)]['summary'])}, "
                    f"epochs {res[str(lag)]['epochs']}, "
                    f"{sum(r['seconds'] for r in runs):.0f} s")
            entry["vampnet"][kind] = {"width": width, "params": count_parameters(lobe),
                                      "depth": args.depth, **res}
        report["feature_sets"][name] = entry

    gain = []
    dist = report["feature_sets"].get("distances", {}).get("vampnet")
    if dist:
        for name, entry in report["feature_sets"].items():
            if ":" not in name or not entry["vampnet"]:
                continue
            for kind, res in entry["vampnet"].items():
                for lag in args.lags:
                    e = res[str(lag)]["summary"]["mean"]
                    d = dist["mlp"][str(lag)]["summary"]["mean"]
                    gain.append({"feature_set": name, "lobe": kind, "lag": lag,
                                 "embedding": e, "distances": d, "gain": (e - d) / d})
    report["gain"] = gain
    timings["embedding_s"] = round(embedding_s, 1)
    timings["vampnet_s"] = round(vampnet_s, 1)
    timings["total_s"] = round(time.perf_counter() - t_start, 1)
    report["timings"] = timings
    report["plots"] = plots(report, its, fes, out, args.name)
    report["implied_timescales_ps"] = {
        group: {k: (np.asarray(ts) * dt_ps).round(2).tolist() for k, (_, ts) in d.items()}
        for group, d in its.items()}
    (out / f"{args.name}.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / f"{args.name}.md").write_text(markdown(report))
    log(f"wrote {out / args.name}.json, .md and {', '.join(report['plots'])} in "
        f"{timings['total_s']:.0f} s")
    return report


if __name__ == "__main__":
    main()
