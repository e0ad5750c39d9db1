"""GeomEmbedding: the MDAnalysis analysis class, serial and with parallel backends."""

from __future__ import annotations

import numpy as np

from geomfeat import GeomFeaturizer
from geomfeat.mdanalysis import GeomEmbedding


def test_serial_run_equals_featurizer(universe, weights_url):
    heavy = universe.select_atoms("not element H")
    run = GeomEmbedding(heavy, batch_size=4).run(start=5, stop=35, step=3)
    assert run.results.embeddings.shape == (10, 64)
    assert run.results.embeddings.dtype == np.float32
    assert list(run.frames) == list(range(5, 35, 3))
    expected = GeomFeaturizer(batch_size=4).transform(universe, start=5, stop=35, stride=3)
    np.testing.assert_allclose(run.results.embeddings, expected, atol=1e-5)


def test_declared_parallelizable():
    assert GeomEmbedding._analysis_algorithm_is_parallelizable
    assert {"multiprocessing", "dask"} <= set(GeomEmbedding.get_supported_backends())


def test_multiprocessing_backend_equals_serial(universe, weights_url):
    group = universe.select_atoms("not element H")
    serial = GeomEmbedding(group, batch_size=1, pool="residue").run(stop=12)
    parallel = GeomEmbedding(group, batch_size=1, pool="residue").run(
        stop=12, backend="multiprocessing", n_workers=2)
    assert parallel.results.embeddings.shape == (12, 3, 64)
    np.testing.assert_allclose(parallel.results.embeddings, serial.results.embeddings,
                               atol=1e-5)
    batched = GeomEmbedding(group, batch_size=5).run(stop=12, backend="multiprocessing",
                                                     n_workers=2)
    np.testing.assert_allclose(batched.results.embeddings,
                               GeomEmbedding(group, batch_size=5, pool="residue").run(
                                   stop=12).results.embeddings.sum(1), atol=1e-4)
