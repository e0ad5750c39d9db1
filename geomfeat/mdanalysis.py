"""``GeomEmbedding``: geomfeat as an MDAnalysis analysis class, with MDAnalysis's parallel backends.

>>> from geomfeat.mdanalysis import GeomEmbedding
>>> run = GeomEmbedding(u.select_atoms("protein"), heavy=True).run(step=10)        # doctest: +SKIP
>>> run.results.embeddings.shape                                                    # doctest: +SKIP
(n_frames, 64)
>>> GeomEmbedding(ag).run(backend="multiprocessing", n_workers=4)                  # doctest: +SKIP
"""

from __future__ import annotations

import multiprocessing
from typing import Any

import numpy as np
from MDAnalysis.analysis.base import AnalysisBase
from MDAnalysis.analysis.results import ResultsGroup

from ._threads import torch_threads
from .encoders import Layers
from .errors import InputError
from .featurizer import GeomFeaturizer
from .formats import complete_frames
from .frame_checks import check_box

__all__ = ["GeomEmbedding"]


class GeomEmbedding(AnalysisBase):
    """Embeddings of an AtomGroup's frames by a pre-trained encoder (MDAnalysis conventions).

    Parameters
    ----------
    atomgroup : MDAnalysis.core.groups.AtomGroup
        Atoms to embed (positions in Å, read frame by frame).
    model : str
        Registered encoder, e.g. ``"visnet-denali"``.
    pool, reduce, features, layers, dtype, pbc, device
        As for :class:`geomfeat.GeomFeaturizer`.
    select, heavy, elements, allow_unseen_elements
        As for :class:`geomfeat.GeomFeaturizer`; ``select`` applies within ``atomgroup``
        (default ``"all"``: the group is the selection); ``heavy=True`` leaves out its
        hydrogens, decided on geomfeat's elements (works on topologies without elements).
    batch_size : int
        Frames embedded together. Batches start at multiples of ``batch_size`` in the run's
        frame sequence, in serial and parallel runs alike; each part of a parallel run flushes
        its last, partial batch at its end.
    threads : int, optional
        PyTorch intra-op threads while embedding (default: unchanged). CPU workers forked by
        ``backend="multiprocessing"`` always use one, since PyTorch's OpenMP pool inherited
        from the parent would hang them. Float32 sums depend on the thread count at the 1e-6
        level, so a parallel run equals a serial run with the same thread count bit for bit
        (``threads=1`` for ``multiprocessing``).
    verbose : bool
        Progress bar (MDAnalysis's).

    Attributes
    ----------
    results.embeddings : ndarray, float32
        ``(n_frames, *frame_shape)``, e.g. ``(n_frames, 64)`` for graph pooling.

    Notes
    -----
    Declared parallelizable for ``backend="multiprocessing"`` and ``backend="dask"``: the
    featurizer is pickled without its encoder, which every worker loads once from the cache.
    """

    _analysis_algorithm_is_parallelizable = True

    @classmethod
    def get_supported_backends(cls) -> tuple[str, ...]:
        return ("serial", "multiprocessing", "dask")

    def __init__(self, atomgroup, model: str = "visnet-denali", *, select: Any = "all",
                 heavy: bool = False, elements: Any = None, allow_unseen_elements: bool = False,
                 pool: str = "graph", reduce: str = "sum", features: str = "scalar",
                 layers: Layers = "last", batch_size: int = 256, device: str | None = None,
                 dtype: str = "float32", pbc: bool = True, threads: int | None = None,
                 verbose: bool = False) -> None:
        super().__init__(atomgroup.universe.trajectory, verbose=verbose)
        self.atomgroup = atomgroup
        self.threads = threads
        self.featurizer = GeomFeaturizer(model, select=select, heavy=heavy, elements=elements,
                                         allow_unseen_elements=allow_unseen_elements,
                                         pool=pool, reduce=reduce,
                                         features=features, layers=layers,
                                         batch_size=batch_size,
                                         device=device, dtype=dtype, pbc=pbc)

    def run(self, start: int | None = None, stop: int | None = None, step: int | None = None,
            frames: Any = None, **kwargs: Any) -> GeomEmbedding:
        """Embed the frames ``start:stop:step`` (or ``frames``); see ``AnalysisBase.run``.

        An XTC file whose last frame is cut off inside its body: MDAnalysis counts that frame
        and fails to read it at the end of the run; here the complete frames are embedded
        (the warning says so, see :mod:`geomfeat.formats`).
        """
        trajectory = self._trajectory
        filename = getattr(trajectory, "filename", None)
        cut = None if filename is None else complete_frames(trajectory, filename)
        if cut is not None and cut.cut_frame:
            if frames is None:
                frames = np.arange(trajectory.n_frames)[start:stop:step]
                frames = frames[frames < cut.complete]
                start = stop = step = None
            elif np.any(np.arange(trajectory.n_frames)[frames] >= cut.complete):
                raise InputError(f"{cut.message(filename)}; frames= asks for frame "
                                 f"{cut.complete}")
        return super().run(start=start, stop=stop, step=step, frames=frames, **kwargs)

    def _prepare(self) -> None:
        self._reader = self.featurizer.reader(self.atomgroup)
        self._positions: list[np.ndarray] = []
        self._boxes: list[np.ndarray | None] = []
        self._frames: list[int] = []
        self._done: list[np.ndarray] = []

    def _single_frame(self) -> None:
        self._positions.append(self._reader.group.positions.astype(np.float64))
        # the reader's rule: a lone PDB's crystal cell is not used, a multi-model PDB's
        # header cell or an Amber restart's box is (see MDAnalysisReader.frame_box)
        self._boxes.append(self._reader.frame_box(self._ts))
        self._frames.append(int(self._ts.frame))
        position = self._positions_in_run[self._frame_index]  # index in the whole run's frames
        if (position + 1) % self.featurizer.batch_size == 0:
            self._flush()

    def _flush(self) -> None:
        if not self._positions:
            return
        use_box = self.featurizer.pbc and all(b is not None for b in self._boxes)
        boxes = np.stack(self._boxes) if use_box else None  # type: ignore[arg-type]
        if boxes is not None:  # too small, singular, or missing for a frame (NaN)
            check_box(boxes, self.featurizer.card.cutoff, self._frames, self._reader.source)
        self._done.append(self.featurizer.embed_positions(np.stack(self._positions),
                                                          self._reader, boxes))
        self._positions, self._boxes, self._frames = [], [], []

    def _compute(self, indexed_frames: np.ndarray, verbose: bool | None = None, *,
                 progressbar_kwargs: dict | None = None) -> GeomEmbedding:
        threads = self.threads
        forked = multiprocessing.parent_process() is not None and \
            multiprocessing.get_start_method() == "fork"
        if forked and self.featurizer.torch_device.type == "cpu":
            threads = 1  # a forked worker must not enter the OpenMP pool it inherited
        self._positions_in_run = indexed_frames[:, 0]
        with torch_threads(threads):
            super()._compute(indexed_frames, verbose, progressbar_kwargs=progressbar_kwargs)
            if len(indexed_frames) == 0:
                self._prepare()
            self._flush()  # the last, partial batch of this part
        shape = self.featurizer.frame_shape(self._reader)
        self.results.embeddings = (np.concatenate(self._done) if self._done
                                   else np.empty((0, *shape), dtype=np.float32))
        return self

    def _get_aggregator(self) -> ResultsGroup:
        return ResultsGroup(lookup={"embeddings": ResultsGroup.ndarray_vstack})

    def _conclude(self) -> None:
        pass  # results.embeddings is complete once the parts are stacked
