"""GeomEmbedding: the MDAnalysis analysis class, serial and with parallel backends."""

from __future__ import annotations

import numpy as np
import pytest

from geomfeat import GeomFeaturizer
from geomfeat.mdanalysis import GeomEmbedding


def test_serial_run_equals_featurizer(universe, weights_url):
    heavy = universe.select_atoms("not element H")
    run = GeomEmbedding(heavy, batch_size=4).run(start=5, stop=35, step=3)
    assert run.results.embeddings.shape == (10, 64)
    assert run.results.embeddings.dtype == np.float32
    assert list(run.frames) == list(range(5, 35, 3))
    expected = GeomFeaturizer(batch_size=4).transform(universe, start=5, stop=35, stride=3)
    np.testing.assert_array_equal(run.results.embeddings, expected)  # same batches, same bits


def test_declared_parallelizable():
    assert GeomEmbedding._analysis_algorithm_is_parallelizable
    assert {"multiprocessing", "dask"} <= set(GeomEmbedding.get_supported_backends())


@pytest.mark.parametrize("backend", ["multiprocessing",
                                     pytest.param("dask", marks=pytest.mark.slow)])
def test_parallel_backends_equal_serial_bit_for_bit(universe, weights_url, backend):
    group = universe.select_atoms("not element H")
    options = dict(batch_size=5, pool="residue", threads=1)
    serial = GeomEmbedding(group, **options).run(stop=23)
    parallel = GeomEmbedding(group, **options).run(stop=23, backend=backend, n_workers=2)
    assert parallel.results.embeddings.shape == (23, 3, 64)
    assert list(parallel.frames) == list(range(23))
    np.testing.assert_array_equal(parallel.results.embeddings, serial.results.embeddings)


def test_parallel_run_with_more_threads_agrees_to_round_off(universe, weights_url):
    group = universe.select_atoms("not element H")
    serial = GeomEmbedding(group, batch_size=5, threads=2).run(stop=12)
    parallel = GeomEmbedding(group, batch_size=5).run(stop=12, backend="multiprocessing",
                                                      n_workers=2)
    np.testing.assert_allclose(parallel.results.embeddings, serial.results.embeddings,
                               atol=1e-5)
