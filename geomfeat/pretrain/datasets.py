"""Conformers for denoising pre-training, streamed from disk.

A *source* gives random access to the conformers of one input without holding them in memory:

* :class:`TrajectorySource`: frames of an MD trajectory through geomfeat's own readers (any
  format MDAnalysis reads, an mdtraj ``Trajectory``, an MDAnalysis ``Universe`` or arrays), with a
  selection and ``start:stop:stride``; every frame is a conformer;
* :class:`ExtXYZSource` / :class:`SDFSource`: extended-XYZ files in OrbNet Denali's layout and SDF
  conformer files, read through ASE (``pip install 'geomfeat[ase]'``); only byte offsets are
  kept, each record is parsed when it is drawn.

:class:`ConformerDataset` splits the conformers of all sources into training and validation
*blocks* of consecutive conformers (frames of a trajectory are correlated in time, so neighbouring
frames must not land on both sides) and returns one noised conformer per ``(index, noise seed)``
drawn by the sampler (:mod:`geomfeat.pretrain.sampler`). :func:`collate_conformers` batches them.

Units: coordinates and boxes in Å (mdtraj's nm are converted by the readers).
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..elements import MAX_Z
from ..errors import InputError
from ..trajectory import Selection, TrajectoryReader, load_universe, open_trajectory
from .noise import gaussian_noise

__all__ = ["ConformerBatch", "ConformerDataset", "ConformerSource", "ExtXYZSource",
           "SDFSource", "TrajectorySource", "collate_conformers", "file_sha256", "open_source"]


def file_sha256(path: str | os.PathLike, chunk: int = 2**22) -> str:
    """Hex SHA-256 of a file's content (read in chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class ConformerSource(ABC):
    """Random access to the conformers of one input.

    Attributes
    ----------
    source : str
        What is read, for messages.
    default_block : int
        Conformers per train/validation block when none is given (consecutive frames of a
        trajectory are correlated; records of a conformer file are independent).
    """

    source: str
    default_block: int = 1

    @abstractmethod
    def __len__(self) -> int:
        """Number of conformers."""

    @abstractmethod
    def conformer(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, str]:
        """Conformer ``i``: atomic numbers ``(N,)``, positions ``(N, 3)`` Å, box or None, label."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What identifies the data (paths, content hashes, selection), for the model card."""

    def check(self, i: int, z: np.ndarray, pos: np.ndarray, label: str) -> None:
        """Raise :class:`InputError` for non-finite coordinates or unusable elements."""
        if not np.isfinite(pos).all():
            raise InputError(f"{label} of {self.source} has non-finite coordinates (NaN or inf)")
        bad = np.flatnonzero((z <= 0) | (z >= MAX_Z))
        if bad.size:
            raise InputError(f"{label} of {self.source}: atom {int(bad[0])} has atomic number "
                             f"{int(z[bad[0]])}, outside the encoders' 1..{MAX_Z - 1}")


class TrajectorySource(ConformerSource):
    """Frames of an MD trajectory as conformers, read one at a time.

    Parameters
    ----------
    data : str, path, trajectory object or TrajectoryReader
        A trajectory file (with ``topology``), an mdtraj ``Trajectory``, an MDAnalysis
        ``Universe``/``AtomGroup`` or ``(positions Å, atomic_numbers)``.
    topology : str or path, optional
        Topology of a trajectory file.
    select : str or array of int
        Atoms of every conformer (default ``"all"``: whole molecules, as in the pre-training).
    start, stop, stride : int, optional
        Frame slice.
    """

    @property
    def default_block(self) -> int:  # type: ignore[override]
        """100 frames, or fewer for short trajectories (at least 20 blocks)."""
        return min(100, max(1, len(self) // 20))

    def __init__(self, data: Any, topology: str | os.PathLike | None = None, *,
                 select: Selection = "all", start: int | None = None,
                 stop: int | None = None, stride: int | None = None) -> None:
        self.paths: list[str] = []
        if isinstance(data, (str, os.PathLike)):
            if topology is None:
                raise InputError(f"trajectory {data} needs a topology")
            self.paths = [os.fspath(data), os.fspath(topology)]
            data = load_universe(data, topology)
        self.reader: TrajectoryReader = open_trajectory(data, select)
        self.frames = self.reader.frame_indices(start, stop, stride)
        self.select = select if isinstance(select, str) else np.asarray(select).tolist()
        self.slice = (start, stop, stride)
        self.source = self.paths[0] if self.paths else self.reader.source

    def __len__(self) -> int:
        return len(self.frames)

    def conformer(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, str]:
        frame = self.frames[i]
        batch = next(self.reader.iter_batches(1, range(frame, frame + 1)))
        box = None if batch.boxes is None else batch.boxes[0]
        return self.reader.atomic_numbers, batch.positions[0], box, f"frame {frame}"

    def describe(self) -> dict[str, Any]:
        files = [{"path": str(Path(p).resolve()), "sha256": file_sha256(p)} for p in self.paths]
        return {"kind": "trajectory", "source": self.source, "files": files,
                "select": self.select, "slice": list(self.slice), "conformers": len(self),
                "atoms": self.reader.n_atoms}


class _RecordFile(ConformerSource):
    """A text file of records located by byte offsets, each parsed by ASE when drawn."""

    format: str

    def __init__(self, path: str | os.PathLike) -> None:
        try:
            import ase.io  # noqa: F401
        except ImportError:
            raise InputError(f"reading {path} needs ASE: pip install 'geomfeat[ase]'") from None
        self.path = os.fspath(path)
        self.source = self.path
        if not os.path.isfile(self.path):
            raise InputError(f"conformer file not found: {self.path}")
        self.offsets = self._scan()
        if len(self.offsets) < 2:
            raise InputError(f"{self.path} holds no {self.format} records")

    @abstractmethod
    def _scan(self) -> list[int]:
        """Byte offsets of the records' starts, then of the file's end."""

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def conformer(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, str]:
        import io

        import ase.io

        with open(self.path, "rb") as handle:
            handle.seek(self.offsets[i])
            text = handle.read(self.offsets[i + 1] - self.offsets[i]).decode()
        try:
            atoms = ase.io.read(io.StringIO(text), format=self.format)
        except Exception as exc:
            raise InputError(f"record {i} of {self.path} is not valid {self.format}: "
                             f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc}"
                             ) from None
        z = np.asarray(atoms.numbers, dtype=np.int64)
        return z, np.asarray(atoms.positions, dtype=np.float64), None, f"record {i}"

    def describe(self) -> dict[str, Any]:
        return {"kind": self.format, "source": self.source,
                "files": [{"path": str(Path(self.path).resolve()),
                           "sha256": file_sha256(self.path)}], "conformers": len(self)}


class ExtXYZSource(_RecordFile):
    """Extended-XYZ conformers (OrbNet Denali's layout: atom count, comment, one line an atom)."""

    format = "extxyz"

    def _scan(self) -> list[int]:
        offsets = []
        with open(self.path, "rb") as handle:
            while True:
                start = handle.tell()
                line = handle.readline()
                if not line:
                    break
                if not line.strip():
                    continue
                try:
                    n = int(line.split()[0])
                except ValueError:
                    raise InputError(f"{self.path}: expected an atom count at byte {start}, "
                                     f"got {line[:40]!r}") from None
                offsets.append(start)
                for _ in range(n + 1):
                    if not handle.readline():
                        raise InputError(f"{self.path}: record {len(offsets) - 1} is truncated")
            offsets.append(handle.tell())
        return offsets


class SDFSource(_RecordFile):
    """SDF conformers (records ended by ``$$$$``), one molecule each."""

    format = "sdf"

    def _scan(self) -> list[int]:
        offsets = [0]
        with open(self.path, "rb") as handle:
            for line in iter(handle.readline, b""):
                if line.strip() == b"$$$$":
                    offsets.append(handle.tell())
            end = handle.tell()
        if end > offsets[-1]:  # a last record without $$$$
            offsets.append(end)
        return offsets


def open_source(path: str | os.PathLike, topology: str | os.PathLike | None = None,
                **kwargs: Any) -> ConformerSource:
    """A source for ``path``: ``.xyz``/``.extxyz`` and ``.sdf`` through ASE, else a trajectory.

    ``kwargs`` (``select``, ``start``, ``stop``, ``stride``) apply to trajectories only.
    """
    suffix = Path(path).suffix.lower()
    if not os.path.exists(path):
        raise InputError(f"data file not found: {path}")
    if suffix in (".xyz", ".extxyz"):
        return ExtXYZSource(path)
    if suffix == ".sdf":
        return SDFSource(path)
    return TrajectorySource(path, topology, **kwargs)


@dataclass
class ConformerBatch:
    """A batch of noised conformers (possibly of different sizes).

    Attributes
    ----------
    z : Tensor, shape (M,), int64
        Atomic numbers of all ``M`` atoms of the batch.
    pos : Tensor, shape (M, 3)
        Noised coordinates in Å.
    noise : Tensor, shape (M, 3)
        The displacements added, Å (the target before normalisation).
    sizes : list of int
        Atoms of each conformer, in order.
    boxes : Tensor, shape (B, 3, 3), or None
        Periodic boxes (rows are box vectors, Å) when every conformer has one.
    """

    z: Tensor
    pos: Tensor
    noise: Tensor
    sizes: list[int]
    boxes: Tensor | None = None

    def to(self, device: torch.device | str) -> ConformerBatch:
        """The batch on ``device``."""
        return ConformerBatch(self.z.to(device), self.pos.to(device), self.noise.to(device),
                              self.sizes, None if self.boxes is None else self.boxes.to(device))

    def __len__(self) -> int:
        return len(self.sizes)


def collate_conformers(samples: list[dict[str, Any]]) -> ConformerBatch:
    """Concatenate samples of :class:`ConformerDataset` into a :class:`ConformerBatch`."""
    boxes = [s["box"] for s in samples]
    return ConformerBatch(
        z=torch.cat([s["z"] for s in samples]),
        pos=torch.cat([s["pos"] for s in samples]),
        noise=torch.cat([s["noise"] for s in samples]),
        sizes=[int(s["z"].shape[0]) for s in samples],
        boxes=None if any(b is None for b in boxes) else torch.stack(boxes),
    )


class ConformerDataset(Dataset):
    """Training or validation conformers of several sources, noised on access.

    Conformers are grouped into blocks of ``block`` consecutive conformers of each source;
    every ``round(1 / val_fraction)``-th block (the last of each group) is validation, the
    others are training. Items are drawn by ``(index, noise_seed)`` pairs.

    Parameters
    ----------
    sources : list of ConformerSource
        The inputs.
    split : {"train", "val"}
        Which part of the conformers this dataset holds.
    val_fraction : float
        Share of blocks used for validation (0 for none).
    block : int, optional
        Conformers per block (default: each source's ``default_block``: 100 trajectory frames,
        fewer for trajectories shorter than 2000 frames; 1 record of a conformer file).
    sigma : float
        Standard deviation of the noise, Å.
    pbc : bool
        Keep the periodic boxes of trajectory frames (minimum-image neighbour lists).
    """

    def __init__(self, sources: list[ConformerSource], split: str = "train", *,
                 val_fraction: float = 0.1, block: int | None = None, sigma: float = 0.2,
                 pbc: bool = True) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        if not 0 <= val_fraction < 1:
            raise InputError(f"the validation fraction must be in [0, 1), got {val_fraction}")
        if block is not None and block < 1:
            raise InputError(f"the validation block must be at least 1 conformer, got {block}")
        self.sources = list(sources)
        self.split = split
        self.sigma = float(sigma)
        self.pbc = bool(pbc)
        period = round(1 / val_fraction) if val_fraction > 0 else 0
        owners, locals_ = [], []
        for k, src in enumerate(self.sources):
            size = block or src.default_block
            i = np.arange(len(src))
            is_val = ((i // size) % period == period - 1) if period else np.zeros(len(src), bool)
            keep = i[is_val] if split == "val" else i[~is_val]
            owners.append(np.full(keep.size, k, dtype=np.int64))
            locals_.append(keep.astype(np.int64))
        self.owner = np.concatenate(owners) if owners else np.empty(0, np.int64)
        self.local = np.concatenate(locals_) if locals_ else np.empty(0, np.int64)

    def __len__(self) -> int:
        return int(self.owner.size)

    def __getitem__(self, item: tuple[int, int]) -> dict[str, Any]:
        index, seed = item
        src = self.sources[int(self.owner[index])]
        i = int(self.local[index])
        z, pos, box, label = src.conformer(i)
        src.check(i, z, pos, label)
        noise = gaussian_noise(len(z), self.sigma, seed)
        pos = torch.as_tensor(np.asarray(pos, dtype=np.float32)) + noise
        box_t = None if (box is None or not self.pbc) else torch.as_tensor(
            np.asarray(box, dtype=np.float32))
        return {"z": torch.as_tensor(np.asarray(z, dtype=np.int64)), "pos": pos,
                "noise": noise, "box": box_t}

    def elements(self) -> list[int]:
        """Sorted atomic numbers present (reads one conformer of each trajectory source)."""
        found: set[int] = set()
        for k, src in enumerate(self.sources):
            if isinstance(src, TrajectorySource):
                found.update(int(z) for z in src.reader.atomic_numbers)
            else:
                for i in self.local[self.owner == k]:
                    found.update(int(z) for z in src.conformer(int(i))[0])
        return sorted(found)
