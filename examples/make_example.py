"""Generate the bundled alanine-dipeptide example trajectory.

Runs a short Langevin MD simulation of alanine dipeptide (ACE-ALA-NME,
22 atoms) in OBC2 implicit solvent with OpenMM on the CPU platform and
writes the result to ``examples/ala2/``.

Requirements (not needed by the package itself or its tests)::

    pip install geomfeat[examples]
    # or
    pip install openmm openmmtools

Usage::

    python examples/make_example.py [--frames 2000] [--out DIR] [--seed 2024]

Setup
-----
The AMBER ff96 parameters (mbondi2 GB radii) and starting coordinates are
the ``alanine-dipeptide-gbsa`` prmtop/inpcrd files shipped inside the
``openmmtools`` package; they are located on disk without importing
``openmmtools``.

Protocol
--------
* OBC2 implicit solvent, no cutoff, bonds to hydrogen constrained,
  hydrogen mass repartitioned to 1.5 amu.
* ``LangevinMiddleIntegrator`` at 300 K, friction 1 ps^-1, 4 fs time step.
* Energy minimisation, velocities drawn at 300 K, 20 ps unsaved
  equilibration, then one frame saved every 1 ps.
* OpenMM CPU platform with a single thread. The integrator and velocity
  seeds are fixed (``--seed``), so reruns with the same OpenMM version on
  the same kind of CPU give a bit-identical trajectory (with more than one
  thread the CPU platform is not deterministic).

Outputs
-------
``ala2.pdb``
    Topology and minimised coordinates (Angstrom, as per the PDB format).
``ala2.xtc``
    Production trajectory. Coordinates in nm (XTC precision 0.001 nm),
    frame times in ps; frame ``i`` (0-based) is at ``(i + 1) * 1 ps``.
    No periodic box is stored (the system is non-periodic).

Units
-----
OpenMM units throughout: nm, ps, kJ/mol, K, amu.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import openmm
from openmm import app, unit

DATA_SUBDIR = ("data", "alanine-dipeptide-gbsa")
PRMTOP_NAME = "alanine-dipeptide.prmtop"
INPCRD_NAME = "alanine-dipeptide.crd"

TEMPERATURE = 300.0 * unit.kelvin
FRICTION = 1.0 / unit.picosecond
TIMESTEP = 4.0 * unit.femtosecond
HYDROGEN_MASS = 1.5 * unit.amu
EQUILIBRATION_TIME = 20.0 * unit.picosecond
FRAME_INTERVAL = 1.0 * unit.picosecond

DEFAULT_FRAMES = 2000
DEFAULT_SEED = 2024
DEFAULT_OUT = Path(__file__).resolve().parent / "ala2"


def find_setup_files() -> tuple[Path, Path]:
    """Return the paths of the openmmtools alanine-dipeptide prmtop and inpcrd.

    The package folder is found with :func:`importlib.util.find_spec`, which
    does not execute ``openmmtools/__init__.py`` (slow and noisy).
    """
    spec = importlib.util.find_spec("openmmtools")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "openmmtools is not installed: pip install geomfeat[examples] "
            "(or pip install openmm openmmtools)"
        )
    data_dir = Path(next(iter(spec.submodule_search_locations))).joinpath(*DATA_SUBDIR)
    prmtop, inpcrd = data_dir / PRMTOP_NAME, data_dir / INPCRD_NAME
    for path in (prmtop, inpcrd):
        if not path.is_file():
            raise SystemExit(f"missing openmmtools data file: {path}")
    return prmtop, inpcrd


def n_steps(duration: unit.Quantity) -> int:
    """Number of integrator steps covering ``duration``."""
    return round(duration / TIMESTEP)


def run(frames: int, out: Path, seed: int) -> dict[str, object]:
    """Simulate and write ``ala2.pdb`` / ``ala2.xtc`` into ``out``.

    Returns a dict of summary values for printing.
    """
    prmtop_path, inpcrd_path = find_setup_files()
    prmtop = app.AmberPrmtopFile(str(prmtop_path))
    inpcrd = app.AmberInpcrdFile(str(inpcrd_path))

    system = prmtop.createSystem(
        nonbondedMethod=app.NoCutoff,
        constraints=app.HBonds,
        implicitSolvent=app.OBC2,
        hydrogenMass=HYDROGEN_MASS,
    )
    integrator = openmm.LangevinMiddleIntegrator(TEMPERATURE, FRICTION, TIMESTEP)
    integrator.setRandomNumberSeed(seed)
    # One thread: with several, the CPU platform's force summation order (and
    # hence the trajectory) varies from run to run. For 22 atoms it is also
    # faster than threading.
    platform = openmm.Platform.getPlatformByName("CPU")
    simulation = app.Simulation(prmtop.topology, system, integrator, platform, {"Threads": "1"})
    simulation.context.setPositions(inpcrd.positions)

    simulation.minimizeEnergy()
    minimised = simulation.context.getState(getPositions=True, getEnergy=True)

    out.mkdir(parents=True, exist_ok=True)
    pdb_path, xtc_path = out / "ala2.pdb", out / "ala2.xtc"
    with open(pdb_path, "w") as handle:
        # Own REMARK instead of PDBFile.writeHeader's dated one, so that a
        # rerun reproduces the file byte for byte. No CRYST1: not periodic.
        print(f"REMARK   1 ALANINE DIPEPTIDE, MINIMISED, OPENMM {openmm.__version__}", file=handle)
        app.PDBFile.writeModel(prmtop.topology, minimised.getPositions(), handle)
        app.PDBFile.writeFooter(prmtop.topology, handle)

    simulation.context.setVelocitiesToTemperature(TEMPERATURE, seed)
    simulation.step(n_steps(EQUILIBRATION_TIME))

    # Production: restart the step counter so the XTC time axis starts at
    # one frame interval (XTCFile stamps frame i with (i + 1) * interval).
    simulation.currentStep = 0
    simulation.context.setTime(0.0)
    xtc_path.unlink(missing_ok=True)  # XTCReporter refuses to overwrite
    interval = n_steps(FRAME_INTERVAL)
    simulation.reporters.append(app.XTCReporter(str(xtc_path), interval))
    simulation.step(frames * interval)

    return {
        "atoms": prmtop.topology.getNumAtoms(),
        "frames": frames,
        "interval_ps": FRAME_INTERVAL.value_in_unit(unit.picosecond),
        "e_min": minimised.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
        "pdb": pdb_path,
        "xtc": xtc_path,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse command-line arguments."""
    parser = argparse.ArgumentParser(
        description="Simulate alanine dipeptide (OBC2, 300 K) for the geomfeat example."
    )
    parser.add_argument(
        "--frames",
        type=int,
        default=DEFAULT_FRAMES,
        help=f"number of saved frames, 1 ps apart (default {DEFAULT_FRAMES})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="output directory (default: ala2/ next to this script)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help=f"integrator and velocity random seed (default {DEFAULT_SEED})",
    )
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error("--frames must be >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    args = parse_args(argv)
    start = time.perf_counter()
    info = run(args.frames, args.out, args.seed)
    elapsed = time.perf_counter() - start
    print(
        f"wrote {info['xtc']} ({info['frames']} frames x {info['atoms']} atoms, "
        f"{info['interval_ps']:g} ps/frame) and {info['pdb']}; "
        f"OpenMM {openmm.__version__}, seed {args.seed}, "
        f"E_min {info['e_min']:.1f} kJ/mol, {elapsed:.1f} s"
    )


if __name__ == "__main__":
    main()
