"""Feature sets named by spec strings, computed on the same (strided) frames.

Spec strings
------------
``MODEL[:POOL[:FEATURES[:LAYERS]]]``
    An encoder's readout: a registered name (``geomfeat.list_models()``), a model trained with
    ``geomfeat pretrain`` (installed in the local-models folder, or its card's path), e.g.
    ``visnet-denali`` (=
    ``visnet-denali:graph:scalar:last``), ``visnet-denali:residue:invariant:all``,
    ``et-denali:graph:scalar:0,2,5``. ``POOL`` graph, residue or residue-local (tokens
    ``(R, C)``);
    ``FEATURES`` scalar or invariant (scalars and the norms of the pooled vector channels);
    ``LAYERS`` last, all or 0-based interaction-layer indices (negative allowed). All graph and
    residue readouts of one encoder come from **one** encoder pass per trajectory (per-atom
    scalar and vector channels of every layer, pooled here with geomfeat's own pooling) and are
    cached as ``.npy`` in the readout cache (:mod:`~geomfeat.evaluate.readouts`). ``POOL``
    residue-local (tokens of each residue's local graph) needs its own pass (one per encoder
    and trajectory, all layers, also cached).
``distances`` (alias ``heavy-distances``)
    All pairwise distances between heavy atoms, nm.
``ca-distances``
    All pairwise distances between Cα atoms, nm.
``contacts``
    Residue–residue contacts: the closest heavy-atom distance ``d`` of every residue pair
    mdtraj's ``compute_contacts`` keeps (pairs at least three residues apart), as the smooth
    switching function ``1 / (1 + (d / 0.45 nm)^6)``.
``backbone-torsions``, ``sidechain-torsions``, ``torsions``
    sin and cos of every φ, ψ (backbone), χ1–χ4 (side chains), or both.
``distances:N``, ``ca-distances:N``, ``contacts:N``
    At most ``N`` of those pairs, evenly spaced through the sorted pair list (deterministic):
    the affordable variant on large systems (all heavy-atom pairs of a protein do not fit).
``npy:PATH``
    User arrays: ``PATH`` is one ``.npy`` per trajectory given as a comma-separated list or as
    a pattern with ``{stem}`` (the trajectory file's name without suffix) or ``{i}`` (its
    0-based position). Each array has one row per analysed frame, or one per frame of the
    file when a stride is used (then the stride is applied).
``A+B``
    The concatenation of feature sets (token sets are flattened first).

Every set is a list of float32 arrays, one per trajectory, ``(T, D)`` or ``(T, R, D)``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import GeomfeatError
from .lags import timestep_ps

__all__ = [
    "CLASSICAL",
    "DEFAULT_FEATURES",
    "FeatureSet",
    "Trajectories",
    "build_feature_sets",
    "load_trajectories",
    "parse_spec",
]

#: Feature sets compared when none are given.
DEFAULT_FEATURES = ("visnet-denali:graph:scalar:last", "visnet-denali:residue:scalar:last",
                    "distances", "torsions")

#: Contact switching distance, nm.
CONTACT_R0_NM = 0.45


@dataclass
class Trajectories:
    """The analysed frames: mdtraj trajectories (strided) and where they came from."""

    top: str
    paths: list[str]
    stride: int
    trajs: list  # list[mdtraj.Trajectory]
    dt_ps: float | None
    timestep_source: str

    @property
    def lengths(self) -> list[int]:
        return [t.n_frames for t in self.trajs]

    def as_dict(self) -> dict:
        return {"top": self.top, "paths": self.paths, "stride": self.stride,
                "frames": self.lengths, "dt_ps": self.dt_ps,
                "timestep_source": self.timestep_source}


@dataclass
class FeatureSet:
    """One feature set: ``data[i]`` is trajectory ``i``, float32 ``(T_i, ...)``."""

    name: str
    data: list[np.ndarray]
    description: str
    seconds: float = 0.0
    info: dict = field(default_factory=dict)

    @property
    def frame_shape(self) -> tuple[int, ...]:
        return tuple(self.data[0].shape[1:])

    def as_dict(self) -> dict:
        return {"description": self.description, "frame_shape": list(self.frame_shape),
                "seconds": round(self.seconds, 1), **self.info}


def load_trajectories(top: str | os.PathLike, paths: Sequence[str | os.PathLike], *,
                      stride: int = 1, timestep: float | None = None) -> Trajectories:
    """Read trajectories with mdtraj (``stride`` applied) and find the time between frames.

    Parameters
    ----------
    top : path
        Topology file.
    paths : sequence of path
        Trajectory files (all with this topology).
    stride : int
        Read every ``stride``-th frame.
    timestep : float, optional
        Time between the frames *of the files* in ps, for files that do not record it; it
        overrides the recorded one. The analysed step is ``timestep × stride``.

    Raises
    ------
    GeomfeatError
        A missing or unreadable file (named), or trajectories with different time steps.
    """
    import mdtraj as md

    if stride < 1:
        raise GeomfeatError(f"stride must be >= 1, got {stride}")
    top, paths = str(top), [str(p) for p in paths]
    for p in [top, *paths]:
        if not Path(p).is_file():
            raise GeomfeatError(f"no such file: {p}")
    trajs, steps = [], []
    for p in paths:
        try:
            t = md.load(p, top=top, stride=stride)
        except Exception as exc:  # mdtraj raises many types for unreadable input
            raise GeomfeatError(f"{p}: cannot read with topology {top}: {exc}") from None
        trajs.append(t)
        # formats without times (PDB, DCD, XYZ, ...): mdtraj numbers the frames 0, 1, 2 as ints
        invented = np.issubdtype(np.asarray(t.time).dtype, np.integer)
        steps.append(None if invented else timestep_ps(t.time))
    if timestep is not None:
        if not timestep > 0:
            raise GeomfeatError(f"timestep must be > 0 ps, got {timestep}")
        dt, source = float(timestep) * stride, "given (timestep) x stride"
    else:
        known = [s for s in steps if s is not None]
        dt, source = (known[0], "read from the trajectories") if known else (None, "unknown")
        if any(abs(s - known[0]) > 1e-3 * known[0] for s in known):
            raise GeomfeatError(f"trajectories have different time steps (ps): "
                                f"{dict(zip(paths, steps, strict=True))}")
    return Trajectories(top=top, paths=paths, stride=stride, trajs=trajs, dt_ps=dt,
                        timestep_source=source)


# --------------------------------------------------------------------------------------------
# spec strings
# --------------------------------------------------------------------------------------------

CLASSICAL = ("distances", "heavy-distances", "ca-distances", "contacts", "backbone-torsions",
             "sidechain-torsions", "torsions")
#: Kinds that take ``:N`` (at most N pairs).
PAIR_KINDS = ("distances", "heavy-distances", "ca-distances", "contacts")


def parse_spec(spec: str) -> list[dict]:
    """Split a spec string into its parts, each a dict with ``kind`` and settings.

    Raises
    ------
    GeomfeatError
        An unknown name, pool, features or layers value.
    """
    from ..errors import UnknownModelError
    from ..pooling import FEATURES
    from ..registry import get_model_card, list_local_models, list_models

    spec = spec.strip()
    if not spec:
        raise GeomfeatError("empty feature-set spec")
    parts = []
    for item in spec.split("+"):
        item = item.strip()
        if item.startswith("npy:"):
            if not item[4:]:
                raise GeomfeatError(f"feature set {spec!r}: npy: needs a path")
            parts.append({"kind": "npy", "path": item[4:]})
            continue
        if item in CLASSICAL:
            parts.append({"kind": "distances" if item == "heavy-distances" else item})
            continue
        name, _, count = item.partition(":")
        if name in PAIR_KINDS and count:
            if not count.isdigit() or int(count) < 1:
                raise GeomfeatError(f"feature set {item!r}: {name}:N needs a number of pairs "
                                    "N >= 1")
            parts.append({"kind": "distances" if name == "heavy-distances" else name,
                          "max_pairs": int(count)})
            continue
        model, *rest = item.split(":")
        try:
            card = get_model_card(model)  # registered, a local model or a model card's path
        except UnknownModelError:
            known = [*list_models(), *(card.name for card in list_local_models())]
            raise GeomfeatError(f"feature set {item!r}: not an encoder "
                                f"({', '.join(known)}, or a model card's path), nor one of "
                                f"{', '.join(CLASSICAL)}, nor npy:PATH") from None
        if len(rest) > 3:
            raise GeomfeatError(f"feature set {item!r}: expected MODEL[:POOL[:FEATURES[:LAYERS]]]")
        pool, features, layers = (rest + ["graph", "scalar", "last"][len(rest):])
        if features not in FEATURES or features == "equivariant":
            raise GeomfeatError(f"feature set {item!r}: features must be scalar or invariant")
        if pool not in ("graph", "residue", "residue-local"):
            raise GeomfeatError(f"feature set {item!r}: pool must be graph, residue or "
                                "residue-local")
        parts.append({"kind": "embedding", "model": model, "pool": pool, "features": features,
                      "layers": _parse_layers(layers, item,
                                              int(card.hyperparameters["num_layers"]))})
    return parts


def _parse_layers(text: str, item: str, n_layers: int) -> str | list[int]:
    """``last``, ``all`` or the 0-based indices of ``text``, checked against the encoder's
    ``n_layers`` interaction layers (before any work)."""
    from ..encoders.base import resolve_layers

    if text in ("last", "all"):
        return text
    try:
        layers = [int(x) for x in text.split(",")]
    except ValueError:
        raise GeomfeatError(f"feature set {item!r}: layers must be last, all or indices such as "
                            "0,2,5") from None
    try:
        resolve_layers(layers, n_layers)
    except ValueError as exc:
        raise GeomfeatError(f"feature set {item!r}: {exc}") from None
    return layers


# --------------------------------------------------------------------------------------------
# classical features
# --------------------------------------------------------------------------------------------

def _pairs(atoms: np.ndarray) -> np.ndarray:
    i, j = np.triu_indices(len(atoms), k=1)
    return np.stack([atoms[i], atoms[j]], 1)


def _subsample(pairs: np.ndarray, max_pairs: int | None) -> np.ndarray:
    """At most ``max_pairs`` rows of ``pairs``, evenly spaced (all when None or fewer)."""
    if max_pairs is None or len(pairs) <= max_pairs:
        return pairs
    return pairs[np.unique(np.linspace(0, len(pairs) - 1, max_pairs).round().astype(int))]


def _classical(kind: str, trajs: Trajectories, max_pairs: int | None = None
               ) -> tuple[list[np.ndarray], str]:
    import mdtraj as md

    top = trajs.trajs[0].topology
    of = "" if max_pairs is None else f" (at most {max_pairs}, evenly spaced)"
    if kind in ("distances", "ca-distances"):
        if kind == "distances":
            atoms = np.array([a.index for a in top.atoms
                              if a.element is None or a.element.symbol != "H"])
            what = "heavy atoms"
        else:
            atoms = top.select("name CA")
            what = "Cα atoms"
        pairs = _subsample(_pairs(atoms), max_pairs)
        if not len(pairs):
            raise GeomfeatError(f"feature set {kind}: fewer than two {what} in {trajs.top}")
        data = [md.compute_distances(t, pairs) for t in trajs.trajs]
        return data, f"{len(pairs)} pairwise distances{of} (nm) of {len(atoms)} {what}"
    if kind == "contacts":
        try:
            _, pairs = md.compute_contacts(trajs.trajs[0][:1], contacts="all",
                                           scheme="closest-heavy")
        except ValueError:
            pairs = np.zeros((0, 2))
        if not len(pairs):
            raise GeomfeatError(f"feature set contacts: no residue pairs three or more residues "
                                f"apart in {trajs.top}")
        pairs = _subsample(np.asarray(pairs), max_pairs)
        data = []
        for t in trajs.trajs:  # chunks of frames: mdtraj holds every atom pair of every frame
            d = np.concatenate([md.compute_contacts(t[i:i + 256], contacts=pairs,
                                                    scheme="closest-heavy")[0]
                                for i in range(0, t.n_frames, 256)])
            data.append(1.0 / (1.0 + (d / CONTACT_R0_NM) ** 6))
        return data, (f"{len(pairs)} residue contacts{of}, closest heavy atoms, "
                      f"1/(1+(d/{CONTACT_R0_NM} nm)^6)")
    kinds = {"backbone-torsions": ("phi", "psi"),
             "sidechain-torsions": ("chi1", "chi2", "chi3", "chi4"),
             "torsions": ("phi", "psi", "chi1", "chi2", "chi3", "chi4")}[kind]
    counts = {k: len(getattr(md, f"compute_{k}")(trajs.trajs[0][:1])[0]) for k in kinds}
    if not sum(counts.values()):
        raise GeomfeatError(f"feature set {kind}: no {'/'.join(kinds)} torsions in {trajs.top}")
    data = []
    for t in trajs.trajs:
        ang = np.concatenate([getattr(md, f"compute_{k}")(t)[1] for k in kinds if counts[k]], 1)
        data.append(np.concatenate([np.sin(ang), np.cos(ang)], 1))
    what = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    return data, f"sin and cos of {what} torsions"


def _user_arrays(path: str, trajs: Trajectories) -> list[np.ndarray]:
    if "{stem}" in path or "{i}" in path:
        files = [path.format(stem=Path(p).stem, i=i) for i, p in enumerate(trajs.paths)]
    else:
        files = path.split(",")
    if len(files) != len(trajs.trajs):
        raise GeomfeatError(f"npy:{path}: {len(files)} file(s) for {len(trajs.trajs)} "
                            "trajectories (use a comma-separated list or {stem})")
    out = []
    for f, t in zip(files, trajs.trajs, strict=True):
        if not Path(f).is_file():
            raise GeomfeatError(f"npy: no such file: {f}")
        try:
            a = np.load(f, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise GeomfeatError(f"{f}: not a .npy array: {exc}") from None
        if a.ndim < 2:
            a = a.reshape(-1, 1)
        if len(a) != t.n_frames and trajs.stride > 1 and -(-len(a) // trajs.stride) == t.n_frames:
            a = a[::trajs.stride]
        if len(a) != t.n_frames:
            raise GeomfeatError(f"{f}: {len(a)} rows, but the trajectory has {t.n_frames} "
                                f"analysed frames (stride {trajs.stride})")
        a = np.asarray(a, dtype=np.float32)
        if not np.isfinite(a).all():
            row, col = np.argwhere(~np.isfinite(a.reshape(len(a), -1)))[0]
            raise GeomfeatError(f"{f}: non-finite value ({a.reshape(len(a), -1)[row, col]}) in "
                                f"row {row}, column {col}")
        out.append(a)
    return out


# --------------------------------------------------------------------------------------------
# all feature sets
# --------------------------------------------------------------------------------------------

def build_feature_sets(specs: Sequence[str], trajs: Trajectories, *, select: str = "heavy",
                       reduce: str = "sum", cache: str | os.PathLike | None = None,
                       device: str | None = "cpu", batch_size: int | None = None,
                       log: Callable[[str], None] = lambda s: None, progress: bool = False
                       ) -> tuple[dict[str, FeatureSet], dict]:
    """Compute every feature set of ``specs`` on the frames of ``trajs``.

    Every spec is parsed and every ``npy:`` array read and checked before any feature is
    computed, so a bad spec or file fails in seconds, not after an encoder pass. Encoder
    readouts share one cached encoder pass per encoder and trajectory
    (:mod:`~geomfeat.evaluate.readouts`; ``cache`` default:
    :func:`~geomfeat.evaluate.readouts.readout_cache_dir`). ``progress``: a progress bar
    (frames/s) per encoder pass.

    Returns
    -------
    sets : dict
        ``{spec: FeatureSet}`` in the order given.
    embedding : dict
        Per encoder: seconds spent embedding (0 when read from the cache), frames/s, whether
        all interaction layers were available, the cache folder and the cache entries that
        were recomputed because they did not match.

    Raises
    ------
    GeomfeatError
        A bad spec or ``npy:`` file, or a feature set whose every feature is constant.
    """
    from .readouts import Readouts, readout_cache_dir

    cache_dir = readout_cache_dir(cache)
    parsed = {spec: parse_spec(spec) for spec in specs}
    if len(set(parsed)) != len(list(specs)):
        raise GeomfeatError(f"feature sets repeat: {list(specs)}")
    done: dict[str, tuple[list[np.ndarray], str]] = {}
    for parts in parsed.values():  # user arrays first: cheap, and a bad file fails early
        for part in parts:
            if part["kind"] == "npy":
                done[json.dumps(part, sort_keys=True)] = (_user_arrays(part["path"], trajs),
                                                          f"user arrays {part['path']}")
    readouts: dict[str, Readouts] = {}
    sets: dict[str, FeatureSet] = {}
    for spec, parts in parsed.items():
        t0 = time.perf_counter()
        pieces, descriptions = [], []
        for part in parts:
            key = json.dumps(part, sort_keys=True)
            if key not in done:
                if part["kind"] == "embedding":
                    local = part["pool"] == "residue-local"
                    name = part["model"] + (" residue-local" if local else "")
                    r = readouts.setdefault(name, Readouts(
                        part["model"], trajs, select=select, reduce=reduce, cache=cache_dir,
                        device=device, batch_size=batch_size, log=log, local=local,
                        progress=progress))
                    data = r.readout(part["pool"], part["features"], part["layers"])
                    layers = part["layers"] if isinstance(part["layers"], str) else \
                        ",".join(map(str, part["layers"]))
                    desc = (f"geomfeat {part['model']} select={select} pool={part['pool']} "
                            f"reduce={reduce} features={part['features']} layers={layers}")
                else:
                    data, desc = _classical(part["kind"], trajs, part.get("max_pairs"))
                    data = [np.asarray(d, np.float32) for d in data]
                done[key] = (data, desc)
            pieces.append(done[key][0])
            descriptions.append(done[key][1])
        if len(pieces) == 1:
            data = pieces[0]
        else:
            data = [np.concatenate([p[i].reshape(len(p[i]), -1) for p in pieces], axis=1)
                    for i in range(len(trajs.trajs))]
        _check_varies(spec, data)
        sets[spec] = FeatureSet(spec, data, " + ".join(descriptions),
                                seconds=time.perf_counter() - t0)
        log(f"feature set {spec}: frames {sets[spec].frame_shape}")
    embedding = {m: {"seconds": round(r.seconds, 1), "frames_per_s": r.frames_per_s,
                     "all_layers": r.all_layers, "cache": str(cache_dir),
                     "recomputed_cache_entries": r.recomputed}
                 for m, r in readouts.items()}
    return sets, embedding


def _check_varies(spec: str, data: Sequence[np.ndarray]) -> None:
    """Raise unless at least one feature of ``spec`` varies over the frames."""
    flat = [np.asarray(d).reshape(len(d), -1) for d in data if len(d)]
    lo = np.min([d.min(0) for d in flat], axis=0)
    hi = np.max([d.max(0) for d in flat], axis=0)
    if not (hi - lo > 1e-6 * np.maximum(1.0, np.abs(hi))).any():
        raise GeomfeatError(f"feature set {spec}: every one of its {len(lo)} features is "
                            "constant over all frames; it carries no kinetic information")
