"""Generate the second development system: a capped tetrapeptide in implicit solvent.

Builds ACE-ALA-VAL-GLY-ALA-NME (4 residues plus caps, 26 heavy atoms) from
ideal internal coordinates (no input files, no internet), adds hydrogens
with OpenMM, and runs several independent Langevin trajectories one after
another with OpenMM on the CPU platform. Each trajectory is written to its
own XTC and is kept once complete, so an interrupted run resumes where it
stopped (finished trajectories are skipped).

Requirements (not needed by the package itself or its tests)::

    pip install geomfeat[examples]      # or: pip install openmm

Usage::

    python examples/make_peptide.py [--n-traj 8] [--ns 2.5] [--frame-ps 2] [--out DIR] [--seed 2026]
    python examples/make_peptide.py --speed-test 10     # ns/day for 10 s, writes nothing

Setup
-----
* Backbone and side chains from standard bond lengths and angles (Engh &
  Huber values rounded), trans peptide bonds, start in the polyproline-II
  region (phi = -75 deg, psi = 145 deg), L chirality; hydrogens added by
  :meth:`openmm.app.Modeller.addHydrogens` with the force field's templates.
* AMBER ff14SB (``amber14-all.xml``) with the GBn2 implicit solvent model
  (``implicit/gbn2.xml``), no cutoff.

Protocol
--------
* Bonds to hydrogen constrained, hydrogen mass repartitioned to 3 amu.
* ``LangevinMiddleIntegrator`` at 300 K, friction 1 ps^-1, 4 fs time step.
* Energy minimisation of the built structure (written as the topology
  PDB). For trajectory ``i``: velocities drawn at 300 K with seed
  ``seed + i``, 100 ps unsaved equilibration, then one frame every
  ``--frame-ps`` ps for ``--ns`` ns. Integrator seed ``seed + i`` as well.
* OpenMM CPU platform with one thread (reproducible bit for bit on the same
  OpenMM version and kind of CPU; with more threads the summation order,
  and hence the trajectory, varies between runs).

Outputs
-------
``peptide.pdb``
    Topology and minimised coordinates (Angstrom, as per the PDB format).
``peptide_rNN.xtc``
    Trajectory ``NN`` (00, 01, ...). Coordinates in nm (XTC precision
    0.001 nm), frame times in ps; frame ``k`` (0-based) is at
    ``(k + 1) * frame_ps``. Non-periodic, no box. Written to
    ``.peptide_rNN.xtc.part`` and renamed when complete.

Units
-----
OpenMM units throughout: nm, ps, kJ/mol, K, amu.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import random
import time
from pathlib import Path

# Default the CPU platform to one thread *before* OpenMM loads it: the Context
# that Modeller.addHydrogens creates internally takes the default, and with
# several threads its result (and so the whole run) is not reproducible.
os.environ["OPENMM_CPU_THREADS"] = "1"

import numpy as np
import openmm
from openmm import app, unit

SEQUENCE = ("ALA", "VAL", "GLY", "ALA")
FORCEFIELD_FILES = ("amber14-all.xml", "implicit/gbn2.xml")

TEMPERATURE = 300.0 * unit.kelvin
FRICTION = 1.0 / unit.picosecond
TIMESTEP = 4.0 * unit.femtosecond
HYDROGEN_MASS = 3.0 * unit.amu
EQUILIBRATION_TIME = 100.0 * unit.picosecond

DEFAULT_N_TRAJ = 8
DEFAULT_NS = 2.5
DEFAULT_FRAME_PS = 2.0
DEFAULT_SEED = 2026
DEFAULT_OUT = Path(__file__).resolve().parent / "peptide"

# Ideal geometry: bond lengths in Angstrom, angles and dihedrals in degrees.
B_N_CA, B_CA_C, B_C_N, B_C_O, B_C_C = 1.458, 1.525, 1.329, 1.231, 1.530
A_N_CA_C, A_CA_C_N, A_C_N_CA, A_N_C_O, A_N_CA_CB, A_CA_CB_CG = (
    111.2,
    116.2,
    121.7,
    122.7,
    110.5,
    110.5,
)
PHI, PSI, OMEGA = -75.0, 145.0, 180.0
# CB from (C, N, CA): the improper C-N-CA-CB of an L residue.
D_C_N_CA_CB = -122.6
# Valine's gamma carbons from (N, CA, CB): chi1 of CG1 and of CG2.
D_VAL_CG1, D_VAL_CG2 = 175.0, -60.0


def place(
    a: np.ndarray, b: np.ndarray, c: np.ndarray, bond: float, angle: float, torsion: float
) -> np.ndarray:
    """Position of atom ``d`` from three placed atoms (natural extension reference frame).

    ``bond`` is |c-d| (Angstrom), ``angle`` is b-c-d and ``torsion`` is a-b-c-d (degrees).
    """
    angle, torsion = math.radians(angle), math.radians(torsion)
    bc = (c - b) / np.linalg.norm(c - b)
    n = np.cross(b - a, bc)
    n /= np.linalg.norm(n)
    m = np.cross(n, bc)
    d2 = bond * np.array(
        [-math.cos(angle), math.sin(angle) * math.cos(torsion), math.sin(angle) * math.sin(torsion)]
    )
    return c + d2[0] * bc + d2[1] * m + d2[2] * n


def build_heavy_atoms(sequence: tuple[str, ...]) -> list[tuple[str, int, str, np.ndarray]]:
    """Heavy atoms of ACE-(sequence)-NME as ``(residue name, residue index, atom name, xyz Å)``."""
    # Backbone chain in bonding order: ACE CH3, ACE C, then N/CA/C per residue, then NME N, NME C.
    chain: list[tuple[str, int, str]] = [("ACE", 0, "CH3"), ("ACE", 0, "C")]
    for i, name in enumerate(sequence, start=1):
        chain += [(name, i, "N"), (name, i, "CA"), (name, i, "C")]
    last = len(sequence) + 1
    chain += [("NME", last, "N"), ("NME", last, "C")]

    xyz = [np.zeros(3), np.array([1.52, 0.0, 0.0])]
    xyz.append(place(np.array([0.0, 1.0, 0.0]), xyz[0], xyz[1], B_C_N, A_CA_C_N, 0.0))
    for k in range(3, len(chain)):
        atom = chain[k][2]
        prev = chain[k - 1][2]
        if atom == "CA" or (chain[k][0] == "NME" and atom == "C"):  # after N
            bond, angle, torsion = (B_N_CA, A_C_N_CA, OMEGA)
        elif atom == "C":  # after CA
            bond, angle, torsion = (B_CA_C, A_N_CA_C, PHI)
        else:  # N after C
            assert atom == "N" and prev == "C"
            bond, angle, torsion = (B_C_N, A_CA_C_N, PSI)
        xyz.append(place(xyz[k - 3], xyz[k - 2], xyz[k - 1], bond, angle, torsion))
    pos = {(r, a): x for (_, r, a), x in zip(chain, xyz, strict=True)}

    atoms = [(resname, r, a, pos[(r, a)]) for resname, r, a in chain]
    extra: list[tuple[str, int, str, np.ndarray]] = []
    # Carbonyl oxygens: in the peptide plane, cis to the next residue's CA (or NME C).
    for r in range(0, last):
        nxt_ca = pos[(r + 1, "C" if r + 1 == last else "CA")]
        o = place(nxt_ca, pos[(r + 1, "N")], pos[(r, "C")], B_C_O, A_N_C_O, 0.0)
        extra.append((chain[0][0] if r == 0 else sequence[r - 1], r, "O", o))
    for r, name in enumerate(sequence, start=1):
        if name == "GLY":
            continue
        cb = place(pos[(r, "C")], pos[(r, "N")], pos[(r, "CA")], B_C_C, A_N_CA_CB, D_C_N_CA_CB)
        extra.append((name, r, "CB", cb))
        if name == "VAL":
            for atom, chi in (("CG1", D_VAL_CG1), ("CG2", D_VAL_CG2)):
                cg = place(pos[(r, "N")], pos[(r, "CA")], cb, B_C_C, A_CA_CB_CG, chi)
                extra.append((name, r, atom, cg))
        elif name != "ALA":
            raise ValueError(f"residue {name} not supported by this builder (ALA, GLY, VAL only)")
    order = {"N": 0, "CH3": 0, "CA": 1, "C": 2, "O": 3, "CB": 4, "CG1": 5, "CG2": 6}
    return sorted(atoms + extra, key=lambda t: (t[1], order[t[2]]))


def build_topology(
    sequence: tuple[str, ...], forcefield: app.ForceField
) -> tuple[app.Topology, list]:
    """Topology and positions (with hydrogens) of the capped peptide."""
    lines = []
    for serial, (resname, r, atom, x) in enumerate(build_heavy_atoms(sequence), start=1):
        name = f" {atom:<3s}" if len(atom) < 4 else atom
        lines.append(
            f"ATOM  {serial:5d} {name:4s} {resname:3s} A{r + 1:4d}    "
            f"{x[0]:8.3f}{x[1]:8.3f}{x[2]:8.3f}  1.00  0.00           {atom[0]:>2s}"
        )
    lines.append("END")
    pdb = app.PDBFile(io.StringIO("\n".join(lines) + "\n"))
    modeller = app.Modeller(pdb.topology, pdb.positions)
    # addHydrogens starts some hydrogens at positions drawn from Python's global
    # `random` before relaxing them; seed it so that the built structure (and
    # everything downstream) is the same on every run.
    random.seed(0)
    modeller.addHydrogens(forcefield)
    return modeller.topology, modeller.positions


def make_simulation(
    topology: app.Topology, forcefield: app.ForceField, seed: int
) -> app.Simulation:
    """Simulation on the CPU platform with one thread."""
    system = forcefield.createSystem(
        topology, nonbondedMethod=app.NoCutoff, constraints=app.HBonds, hydrogenMass=HYDROGEN_MASS
    )
    integrator = openmm.LangevinMiddleIntegrator(TEMPERATURE, FRICTION, TIMESTEP)
    integrator.setRandomNumberSeed(seed)
    platform = openmm.Platform.getPlatformByName("CPU")
    return app.Simulation(topology, system, integrator, platform, {"Threads": "1"})


def n_steps(duration: unit.Quantity) -> int:
    """Number of integrator steps covering ``duration``."""
    return round(duration / TIMESTEP)


def prepare(out: Path | None) -> tuple[app.Topology, list, app.ForceField]:
    """Build and minimise the peptide; write ``peptide.pdb`` into ``out`` unless None."""
    forcefield = app.ForceField(*FORCEFIELD_FILES)
    topology, positions = build_topology(SEQUENCE, forcefield)
    simulation = make_simulation(topology, forcefield, 0)
    simulation.context.setPositions(positions)
    simulation.minimizeEnergy()
    minimised = simulation.context.getState(getPositions=True).getPositions()
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "peptide.pdb", "w") as handle:
            # Own REMARK instead of writeHeader's dated one: reruns give identical files.
            seq = "-".join(("ACE", *SEQUENCE, "NME"))
            print(
                f"REMARK   1 {seq}, MINIMISED, AMBER14SB/GBN2, OPENMM {openmm.__version__}",
                file=handle,
            )
            app.PDBFile.writeModel(topology, minimised, handle)
            app.PDBFile.writeFooter(topology, handle)
    return topology, minimised, forcefield


def run_trajectory(
    topology: app.Topology,
    positions: list,
    forcefield: app.ForceField,
    xtc_path: Path,
    ns: float,
    frame_ps: float,
    seed: int,
) -> int:
    """Equilibrate and write one production trajectory; returns the number of frames."""
    simulation = make_simulation(topology, forcefield, seed)
    simulation.context.setPositions(positions)
    simulation.context.setVelocitiesToTemperature(TEMPERATURE, seed)
    simulation.step(n_steps(EQUILIBRATION_TIME))
    simulation.currentStep = 0
    simulation.context.setTime(0.0)
    part = xtc_path.with_name(f".{xtc_path.name}.part")
    part.unlink(missing_ok=True)  # XTCReporter refuses to overwrite
    interval = n_steps(frame_ps * unit.picosecond)
    frames = round(ns * 1000.0 / frame_ps)
    simulation.reporters.append(app.XTCReporter(str(part), interval))
    simulation.step(frames * interval)
    del simulation  # closes the XTC file
    part.rename(xtc_path)
    return frames


def speed_test(seconds: float) -> float:
    """Simulated ns per day on one CPU thread, measured over about ``seconds``."""
    topology, positions, forcefield = prepare(None)
    simulation = make_simulation(topology, forcefield, DEFAULT_SEED)
    simulation.context.setPositions(positions)
    simulation.context.setVelocitiesToTemperature(TEMPERATURE, DEFAULT_SEED)
    simulation.step(250)  # warm-up
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        simulation.step(500)
        steps += 500
    elapsed = time.perf_counter() - start
    return steps * TIMESTEP.value_in_unit(unit.nanosecond) / elapsed * 86400.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse command-line arguments."""
    parser = argparse.ArgumentParser(
        description="Simulate ACE-ALA-VAL-GLY-ALA-NME (amber14SB/GBn2, 300 K) for geomfeat."
    )
    parser.add_argument(
        "--n-traj",
        type=int,
        default=DEFAULT_N_TRAJ,
        help=f"number of independent trajectories (default {DEFAULT_N_TRAJ})",
    )
    parser.add_argument(
        "--ns",
        type=float,
        default=DEFAULT_NS,
        help=f"production length of each trajectory in ns (default {DEFAULT_NS:g})",
    )
    parser.add_argument(
        "--frame-ps",
        type=float,
        default=DEFAULT_FRAME_PS,
        help=f"ps between saved frames (default {DEFAULT_FRAME_PS:g})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="output directory (default: peptide/ next to this script)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help=f"base random seed; trajectory i uses seed + i (default {DEFAULT_SEED})",
    )
    parser.add_argument(
        "--speed-test",
        type=float,
        metavar="SECONDS",
        help="only measure ns/day on one thread for this many seconds",
    )
    args = parser.parse_args(argv)
    if args.n_traj < 1 or args.ns <= 0 or args.frame_ps <= 0:
        parser.error("--n-traj, --ns and --frame-ps must be positive")
    steps = args.frame_ps * unit.picosecond / TIMESTEP
    if abs(steps - round(steps)) > 1e-9:
        parser.error(f"--frame-ps must be a multiple of the {TIMESTEP} time step")
    return args


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    args = parse_args(argv)
    if args.speed_test:
        rate = speed_test(args.speed_test)
        print(
            f"{rate:.1f} ns/day = {rate / 24:.2f} ns/hour "
            f"(CPU, 1 thread, OpenMM {openmm.__version__})"
        )
        return
    topology, positions, forcefield = prepare(args.out)
    print(f"wrote {args.out / 'peptide.pdb'} ({topology.getNumAtoms()} atoms)", flush=True)
    for i in range(args.n_traj):
        xtc = args.out / f"peptide_r{i:02d}.xtc"
        if xtc.exists():
            print(f"{xtc} exists, skipped", flush=True)
            continue
        start = time.perf_counter()
        frames = run_trajectory(
            topology, positions, forcefield, xtc, args.ns, args.frame_ps, args.seed + i
        )
        elapsed = time.perf_counter() - start
        print(
            f"wrote {xtc} ({frames} frames, {args.frame_ps:g} ps/frame, seed {args.seed + i}); "
            f"{elapsed:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
