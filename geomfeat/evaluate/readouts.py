"""Encoder readouts for ``geomfeat compare``: one encoder pass per trajectory, cached on disk.

All graph and residue readouts of one encoder (every pooling, scalar or invariant features,
any interaction layers) are derived from one per-atom pass per trajectory; ``residue-local``
tokens need a pass of their own. The pooled per-layer arrays are cached as ``.npy`` files in
the readout cache (:func:`readout_cache_dir`), named by the trajectory, the encoder and a key
of everything they depend on (the files' paths, sizes and modification times, the weights'
hash, the atom selection, reduction, stride and geomfeat's version).

Every cache entry is checked against the request before it is used: rows = analysed frames,
the layer and channel counts of the encoder, float32, finite values, a readable ``.npy``. A bad
entry (cut short, another readout, damaged) is recomputed and rewritten, with a
:class:`CacheWarning` naming the file and what was wrong.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import GeomfeatError

__all__ = ["CACHE_ENV", "CacheWarning", "Readouts", "readout_cache_dir"]

#: Environment variable naming the readout cache folder (overrides ``$GEOMFEAT_CACHE/evaluate``).
CACHE_ENV = "GEOMFEAT_EVAL_CACHE"


class CacheWarning(UserWarning):
    """A readout cache entry did not match its request and was recomputed."""


def readout_cache_dir(cache: str | os.PathLike | None = None) -> Path:
    """The folder of cached encoder readouts.

    ``cache`` when given; else ``$GEOMFEAT_EVAL_CACHE``; else ``evaluate/`` inside geomfeat's
    cache (``$GEOMFEAT_CACHE``, or the OS cache folder, e.g. ``~/.cache/geomfeat``).
    """
    if cache is not None:
        return Path(cache).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    from ..cache import cache_dir

    return cache_dir() / "evaluate"


def _supports_layers() -> bool:
    from ..featurizer import GeomFeaturizer

    return "layers" in inspect.signature(GeomFeaturizer.__init__).parameters


def _file_key(paths: Sequence[str], **settings: object) -> str:
    items = [(str(Path(p).resolve()), os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in paths]
    return hashlib.sha1(json.dumps([items, settings], sort_keys=True, default=str)
                        .encode()).hexdigest()[:16]


def _save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npy")
    np.save(tmp, array)
    tmp.replace(path)


class Readouts:
    """Per-layer pooled readouts of one encoder, one pass per trajectory, cached on disk.

    Arrays per trajectory (float32): ``graph_scalar``/``graph_vnorm`` ``(T, L, H)`` and
    ``residue_scalar``/``residue_vnorm`` ``(T, R, L, H)`` from one per-atom pass, or
    ``residue-local_*`` ``(T, R, L, H)`` from a ``pool="residue-local"`` pass; ``L`` the
    layers the featurizer exposes (all interaction layers, or only the last one for a
    featurizer without ``layers=``). ``vnorm`` are the norms of the pooled vector channels,
    exactly as ``features="invariant"`` computes them.
    """

    def __init__(self, model: str, trajs, *, select: str, reduce: str, cache: Path,
                 device: str | None, batch_size: int | None, log: Callable[[str], None],
                 local: bool = False, progress: bool = False) -> None:
        self.model, self.trajs, self.select, self.reduce = model, trajs, select, reduce
        self.local = local  # pool="residue-local": its own pass (tokens of local graphs)
        self.KEYS = (("residue-local_scalar", "residue-local_vnorm") if local else
                     ("graph_scalar", "graph_vnorm", "residue_scalar", "residue_vnorm"))
        self.cache, self.device, self.batch_size, self.log = cache, device, batch_size, log
        self.progress = progress
        self.all_layers = _supports_layers()
        self.seconds = 0.0
        self.frames_per_s: list[float] = []
        self.recomputed: list[str] = []
        self._data: dict[str, list[np.ndarray]] | None = None

    def _files(self, path: str) -> dict[str, Path]:
        from .._version import __version__
        from ..registry import get_model_card

        card = get_model_card(self.model)  # the weights' hash: a retrained card is not reused
        key = _file_key([path, self.trajs.top], model=self.model, weights=card.sha256,
                        select=self.select, reduce=self.reduce, stride=self.trajs.stride,
                        version=__version__, all_layers=self.all_layers,
                        **({"local": True} if self.local else {}))
        stem = Path(path).stem
        return {k: self.cache / f"{stem}_{card.name}_{key}_{k}.npy" for k in self.KEYS}

    def _expected(self) -> tuple[int, int]:
        """(layers, channels) every array of this encoder has on its last two axes."""
        from ..registry import get_model_card

        card = get_model_card(self.model)
        n_layers = int(card.hyperparameters["num_layers"]) if self.all_layers else 1
        return n_layers, card.hidden_channels

    def _load(self, files: dict[str, Path], n_frames: int) -> dict[str, np.ndarray] | None:
        """The cached arrays if every file exists and matches the request, else ``None``
        (with a :class:`CacheWarning` naming a bad file)."""
        if not all(f.exists() for f in files.values()):
            return None
        n_layers, channels = self._expected()
        arrays: dict[str, np.ndarray] = {}
        for k, f in files.items():
            try:
                a = np.load(f, mmap_mode="r")
            except (OSError, ValueError) as exc:
                return self._bad(f, f"not a readable .npy ({exc})")
            ndim = 3 if k.startswith("graph") else 4
            want = f"({n_frames}, {'R, ' if ndim == 4 else ''}{n_layers}, {channels}) float32"
            if (a.ndim != ndim or a.dtype != np.float32 or len(a) != n_frames
                    or a.shape[-2:] != (n_layers, channels)):
                return self._bad(f, f"holds {a.shape} {a.dtype}, the request is {want} "
                                    f"({n_frames} analysed frames of the trajectory)")
            a = np.ascontiguousarray(a)
            if not np.isfinite(a).all():
                return self._bad(f, "holds non-finite values")
            arrays[k] = a
        for pool in ("residue", "residue-local"):
            pair = [arrays[k].shape for k in (f"{pool}_scalar", f"{pool}_vnorm") if k in arrays]
            if len(pair) == 2 and pair[0] != pair[1]:
                return self._bad(files[f"{pool}_vnorm"], f"shape {pair[1]} differs from its "
                                                         f"scalar channels' {pair[0]}")
        return arrays

    def _bad(self, path: Path, why: str) -> None:
        warnings.warn(f"readout cache entry {path}: {why}; recomputing it", CacheWarning,
                      stacklevel=3)
        self.recomputed.append(str(path))
        return None

    def data(self) -> dict[str, list[np.ndarray]]:
        if self._data is None:
            self._data = {k: [] for k in self.KEYS}
            for path, traj in zip(self.trajs.paths, self.trajs.trajs, strict=True):
                files = self._files(path)
                arrays = self._load(files, traj.n_frames)
                if arrays is None:
                    arrays = self._embed(traj, path)
                    self.cache.mkdir(parents=True, exist_ok=True)
                    for k, f in files.items():
                        _save(f, arrays[k])
                for k in self.KEYS:
                    self._data[k].append(arrays[k])
        return self._data

    def _embed(self, traj, path: str) -> dict[str, np.ndarray]:
        import torch

        from ..featurizer import GeomFeaturizer
        from ..pooling import pool_atoms

        kwargs = {"layers": "all"} if self.all_layers else {}
        featurizer = GeomFeaturizer(self.model, select=self.select,
                                    pool="residue-local" if self.local else "atom",
                                    features="equivariant", reduce=self.reduce,
                                    device=self.device, batch_size=self.batch_size,
                                    progress=self.progress, **kwargs)
        reader = featurizer.reader(traj)
        residues = torch.as_tensor(reader.residues)
        n_res = len(reader.residue_labels)
        h = featurizer.card.hidden_channels
        parts: dict[str, list[np.ndarray]] = {k: [] for k in self.KEYS}
        t0 = time.perf_counter()
        for _, atoms in featurizer.iter_embeddings(reader, reader.frame_indices(None, None,
                                                                                None)):
            a = torch.from_numpy(atoms)  # (B, N, 4, L*H) atoms, or (B, R, 4, L*H) local tokens
            b, n = a.shape[:2]
            a = a.view(b, n, 4, -1, h)
            x, vec = a[:, :, 0], a[:, :, 1:4]
            if self.local:
                parts["residue-local_scalar"].append(x.numpy())
                parts["residue-local_vnorm"].append(torch.linalg.vector_norm(vec, dim=-3)
                                                    .numpy())
                continue
            for pool in ("graph", "residue"):
                xs = pool_atoms(x, pool, self.reduce, residues, n_res)
                vs = pool_atoms(vec, pool, self.reduce, residues, n_res)
                parts[f"{pool}_scalar"].append(xs.numpy())
                parts[f"{pool}_vnorm"].append(torch.linalg.vector_norm(vs, dim=-3).numpy())
        seconds = time.perf_counter() - t0
        self.seconds += seconds
        self.frames_per_s.append(round(traj.n_frames / max(seconds, 1e-9), 1))
        self.log(f"embedded {path} with {self.model} ({traj.n_frames} frames, "
                 f"{traj.n_frames / max(seconds, 1e-9):.0f} frames/s)")
        return {k: np.concatenate(v).astype(np.float32) for k, v in parts.items()}

    def readout(self, pool: str, features: str, layers: str | list[int]) -> list[np.ndarray]:
        """``(T, [R,] L' * H)`` float32 per trajectory: the chosen layers, scalar channels
        (and the vector channels' norms for ``features="invariant"``)."""
        data = self.data()
        n_layers = data[f"{pool}_scalar"][0].shape[-2]
        if layers == "last":
            idx = [n_layers - 1]
        elif layers == "all":
            if not self.all_layers:
                raise GeomfeatError("layers='all' needs a featurizer with layers= support")
            idx = list(range(n_layers))
        else:
            if not self.all_layers:
                raise GeomfeatError("layer indices need a featurizer with layers= support")
            idx = []
            for i in layers:
                if not -n_layers <= i < n_layers:
                    raise GeomfeatError(f"layer {i} out of range for {self.model} "
                                        f"({n_layers} interaction layers)")
                idx.append(i % n_layers)
        out = []
        for xs, vn in zip(data[f"{pool}_scalar"], data[f"{pool}_vnorm"], strict=True):
            x = xs[..., idx, :]
            if features == "invariant":
                x = np.concatenate([x, vn[..., idx, :]], axis=-1)
            out.append(np.ascontiguousarray(x.reshape(*x.shape[:-2], -1), dtype=np.float32))
        return out
