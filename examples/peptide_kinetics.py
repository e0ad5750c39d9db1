"""Backbone kinetics summary of peptide trajectories: basin populations and transition counts.

For every residue with both backbone dihedrals, each frame's (phi, psi) is
assigned to one of three basins:

* ``beta``  : phi < 0 and (psi >= 60 or psi < -120)   (extended, beta and PPII)
* ``alphaR``: phi < 0 and -120 <= psi < 60           (right-handed helix)
* ``phi>0`` : phi >= 0                               (alpha-L and, for Gly, its mirror basins)

Populations use these basins. Transitions are counted core to core, so that
recrossings of a basin boundary are not counted: a trajectory's state only
changes when it enters the *core* of another basin (beta: psi >= 100 or
psi < -150; alphaR: -90 <= psi < 30; phi>0: 30 <= phi < 150; all cores with
phi in the same half as their basin). Each change is one transition.

Usage::

    python examples/peptide_kinetics.py TOP TRAJ [TRAJ ...]

Prints, per residue, the populations, the number of core-to-core transitions
by pair (both directions summed), their minimum over trajectories and the mean
dwell time per visit; then the slowest implied timescales of a TICA model
(deeptime) on the backbone torsions (sin and cos of every phi and psi) at the
``--lags`` given. Times in ps (from the trajectory files), angles in degrees.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import mdtraj as md
import numpy as np
from deeptime.decomposition import TICA

BASINS = ("beta", "alphaR", "phi>0")


def basins(phi: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """Basin index (0 beta, 1 alphaR, 2 phi>0) per frame; angles in degrees."""
    alpha = (psi >= -120) & (psi < 60)
    return np.where(phi >= 0, 2, np.where(alpha, 1, 0))


def cores(phi: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """Core index per frame (as in :func:`basins`) or -1 outside every core."""
    out = np.full(phi.shape, -1)
    neg = phi < 0
    out[neg & ((psi >= 100) | (psi < -150))] = 0
    out[neg & (psi >= -90) & (psi < 30)] = 1
    out[(phi >= 30) & (phi < 150)] = 2
    return out


def core_to_core(core: np.ndarray) -> list[tuple[int, int, int]]:
    """Transitions ``(frame, from, to)`` of a core series (``-1`` = between cores)."""
    events, state = [], -1
    for frame, c in enumerate(core):
        if c < 0 or c == state:
            continue
        if state >= 0:
            events.append((frame, state, c))
        state = c
    return events


def summarise(top: Path, trajs: list[Path]) -> dict[str, object]:
    """Per-residue populations and transition counts over all trajectories."""
    per_res: dict[str, dict[str, object]] = {}
    torsions: list[np.ndarray] = []
    total_frames, dt = 0, None
    for path in trajs:
        traj = md.load(str(path), top=str(top))
        step = float(traj.time[1] - traj.time[0]) if traj.n_frames > 1 else float("nan")
        dt = step if dt is None else dt
        total_frames += traj.n_frames
        phi_idx, phi = md.compute_phi(traj)
        psi_idx, psi = md.compute_psi(traj)
        # Residue of a phi (C-N-CA-C) is the one of its CA; of a psi (N-CA-C-N) the one of its CA.
        phi_res = [traj.topology.atom(q[2]).residue for q in phi_idx]
        psi_res = [traj.topology.atom(q[1]).residue for q in psi_idx]
        angles = np.concatenate([phi, psi], axis=1)
        torsions.append(np.concatenate([np.sin(angles), np.cos(angles)], axis=1))
        for i, res in enumerate(phi_res):
            if res not in psi_res:
                continue
            j = psi_res.index(res)
            f, s = np.degrees(phi[:, i]), np.degrees(psi[:, j])
            entry = per_res.setdefault(
                str(res), {"counts": np.zeros(3, int), "pairs": {}, "per_traj": []}
            )
            entry["counts"] += np.bincount(basins(f, s), minlength=3)
            events = core_to_core(cores(f, s))
            entry["per_traj"].append(len(events))
            for _, a, b in events:
                key = "-".join(BASINS[k] for k in sorted((a, b)))
                entry["pairs"][key] = entry["pairs"].get(key, 0) + 1
    return {
        "frames": total_frames,
        "dt_ps": dt,
        "n_traj": len(trajs),
        "residues": per_res,
        "torsions": torsions,
    }


def implied_timescales(torsions: list[np.ndarray], lag: int, k: int = 4) -> np.ndarray:
    """The ``k`` slowest implied timescales (in frames) of TICA at ``lag`` frames."""
    model = TICA(lagtime=lag).fit(torsions).fetch_model()
    values = np.clip(model.singular_values[:k], 1e-12, 1 - 1e-12)
    return -lag / np.log(values)


def to_markdown(summary: dict[str, object]) -> str:
    """Markdown table of :func:`summarise`'s result."""
    frames, dt = summary["frames"], summary["dt_ps"]
    lines = [
        f"{summary['n_traj']} trajectories, {frames} frames, {dt:g} ps/frame, "
        f"{frames * dt / 1000:.2f} ns in total",
        "",
        "| residue | beta % | alphaR % | phi>0 % | transitions (core to core) | "
        "min per trajectory | mean dwell per visit (ps) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, e in summary["residues"].items():
        pop = 100.0 * e["counts"] / e["counts"].sum()
        n = sum(e["pairs"].values())
        pairs = ", ".join(f"{k} {v}" for k, v in sorted(e["pairs"].items()))
        dwell = frames * dt / (n + summary["n_traj"])
        lines.append(
            f"| {name} | {pop[0]:.1f} | {pop[1]:.1f} | {pop[2]:.1f} | {n} ({pairs}) | "
            f"{min(e['per_traj'])} | {dwell:.0f} |"
        )
    return "\n".join(lines)


def timescales_markdown(summary: dict[str, object], lags_ps: list[float]) -> str:
    """Lines with the TICA implied timescales (ps) at each lag time (ps)."""
    dt = summary["dt_ps"]
    lines = ["", "TICA on backbone torsions (sin/cos of phi, psi), slowest implied timescales:"]
    for lag_ps in lags_ps:
        lag = round(lag_ps / dt)
        ts = implied_timescales(summary["torsions"], lag) * dt
        lines.append(f"- lag {lag * dt:g} ps: " + ", ".join(f"{t:.0f}" for t in ts) + " ps")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("top", type=Path, help="topology (PDB)")
    parser.add_argument("trajs", type=Path, nargs="+", help="trajectories (XTC, DCD, ...)")
    parser.add_argument(
        "--lags", type=float, nargs="+", default=[20.0, 100.0], help="TICA lag times in ps"
    )
    args = parser.parse_args(argv)
    summary = summarise(args.top, args.trajs)
    print(to_markdown(summary))
    print(timescales_markdown(summary, args.lags))


if __name__ == "__main__":
    main()
