"""The fast paths give the eager results: compiled edge messages, read-ahead of batches.

The compiled (``torch.compile``) message functions are the default on CUDA only; here they are
forced on the CPU (``GEOMFEAT_COMPILE=always``) and must equal the eager path within float32
round-off, and a failing compilation must fall back to the eager path with a warning.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from geomfeat import GeomFeaturizer, list_models
from geomfeat.encoders import layers
from geomfeat.trajectory import prefetched


def _embed(model: str, frames, monkeypatch, mode: str) -> np.ndarray:
    monkeypatch.setenv(layers.COMPILE_ENV, mode)
    featurizer = GeomFeaturizer(model, select="all", pool="atom", features="equivariant")
    return featurizer.transform(frames)


@pytest.mark.slow
@pytest.mark.parametrize("model", list_models())
def test_compiled_messages_equal_eager_on_cpu(model, oracle, weights_url, monkeypatch):
    ref = oracle(model)
    # a protein fragment: neighbourhoods of different sizes, not a complete graph
    frames = (ref["t4l_heavy__pos"][:2, :60].astype(np.float64), ref["t4l_heavy__z"][:60])
    eager = _embed(model, frames, monkeypatch, "never")
    torch._dynamo.reset()
    compiled = _embed(model, frames, monkeypatch, "always")
    assert np.abs(compiled - eager).max() <= 1e-5 * max(1.0, np.abs(eager).max())
    assert not np.array_equal(eager, 0)


def test_failed_compilation_falls_back_to_eager_with_a_warning(oracle, weights_url,
                                                                monkeypatch):
    ref = oracle("et-denali")
    frames = (ref["ala2_all__pos"][:2].astype(np.float64), ref["ala2_all__z"])
    eager = _embed("et-denali", frames, monkeypatch, "never")

    def broken(*args, **kwargs):
        raise RuntimeError("no compiler here")

    from geomfeat.encoders import et

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(et._attention_messages, "_compiled", None)
    monkeypatch.setattr(et._attention_messages, "failed", None)
    with pytest.warns(RuntimeWarning, match="torch.compile of _attention_messages failed"):
        fallback = _embed("et-denali", frames, monkeypatch, "always")
    np.testing.assert_array_equal(fallback, eager)
    assert not et._attention_messages.wanted(torch.device("cuda"))  # not tried again


def test_compile_setting_is_validated(monkeypatch):
    monkeypatch.setenv(layers.COMPILE_ENV, "sometimes")
    with pytest.raises(ValueError, match="GEOMFEAT_COMPILE"):
        layers.compile_mode()
    monkeypatch.setenv(layers.COMPILE_ENV, "auto")
    assert layers.compile_mode() == "auto"


def test_prefetched_keeps_order_and_reads_in_another_thread():
    threads = []

    def items():
        for k in range(5):
            threads.append(threading.current_thread().name)
            yield k

    assert list(prefetched(items(), depth=2)) == [0, 1, 2, 3, 4]
    assert set(threads) == {"geomfeat-prefetch"}
    assert list(prefetched(iter(range(3)), depth=0)) == [0, 1, 2]


@pytest.mark.parametrize(("n_frames", "thread"), [(8, "geomfeat-prefetch"), (4, "MainThread")])
def test_reading_ahead_only_when_there_is_a_next_batch(n_frames, thread, monkeypatch,
                                                        weights_url):
    """A job of one batch reads in the calling thread: a read-ahead thread per file cost
    ~30 ms a file on folders of short trajectories, with nothing to overlap."""
    from geomfeat.trajectory import ArrayReader

    pos = np.random.default_rng(0).normal(scale=3.0, size=(n_frames, 5, 3))
    reader = ArrayReader((pos, np.array([6, 6, 7, 8, 6])), "all")
    read_in = []
    batches = reader.iter_batches

    def recording(*args):
        for batch in batches(*args):
            read_in.append(threading.current_thread().name)
            yield batch

    monkeypatch.setattr(reader, "iter_batches", recording)
    featurizer = GeomFeaturizer("visnet-denali", select="all", progress=False)
    out = list(featurizer.iter_embeddings(reader, range(n_frames), batch_size=4))
    assert sum(len(frames) for frames, _ in out) == n_frames
    assert read_in[-1] == thread  # the last batch (before it, maybe the first frame alone)


def test_prefetched_raises_a_reading_error_after_the_items_before_it():
    def items():
        yield 1
        yield 2
        raise ValueError("frame 2 is truncated")

    seen = []
    with pytest.raises(ValueError, match="frame 2 is truncated"):
        for item in prefetched(items()):
            seen.append(item)
    assert seen == [1, 2]


def test_prefetched_stops_its_thread_when_the_consumer_stops_early():
    produced = []

    def items():
        for k in range(1000):
            produced.append(k)
            yield k

    stream = prefetched(items(), depth=1)
    assert next(stream) == 0
    stream.close()
    assert not any(t.name == "geomfeat-prefetch" for t in threading.enumerate())
    assert len(produced) <= 3


def test_cpu_jobs_compile_only_when_long_enough(monkeypatch, weights_url):
    import geomfeat.featurizer as featurizer_module
    from geomfeat.trajectory import open_trajectory

    monkeypatch.setenv(layers.COMPILE_ENV, "auto")
    pos = np.random.default_rng(0).uniform(0.0, 4.0, size=(50, 10, 3))  # all pairs < 7.5 Å
    reader = open_trajectory((pos, np.full(10, 6)), "all")
    featurizer = GeomFeaturizer(select="all", device="cpu")
    assert not featurizer._long_cpu_job(reader, reader.frame_indices())  # 50 x 100 pairs
    monkeypatch.setattr(featurizer_module, "CPU_COMPILE_MIN_EDGES", 50 * 100)
    assert featurizer._long_cpu_job(reader, reader.frame_indices())
    assert not featurizer._long_cpu_job(reader, reader.frame_indices(stop=49))
    monkeypatch.setenv(layers.COMPILE_ENV, "never")
    assert not featurizer._long_cpu_job(reader, reader.frame_indices())


def test_compile_on_cpu_block_switches_auto_mode_for_the_cpu(monkeypatch):
    from geomfeat.encoders import visnet

    monkeypatch.setenv(layers.COMPILE_ENV, "auto")
    fn = visnet._vis_mp_messages
    monkeypatch.setattr(fn, "failed", None)
    cpu = torch.device("cpu")
    assert not fn.wanted(cpu)
    with layers.compile_on_cpu(True):
        assert fn.wanted(cpu)
    assert not fn.wanted(cpu)
    monkeypatch.setenv(layers.COMPILE_ENV, "never")
    with layers.compile_on_cpu(True):
        assert not fn.wanted(cpu)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fast_vector_norm_equals_pyg_vec_layer_norm(dtype):
    """MaxMinVecNorm (lengths as sqrt of summed squares) is PyG's VecLayerNorm to rounding."""
    from torch_geometric.nn.models.visnet import VecLayerNorm

    from geomfeat.encoders.visnet import MaxMinVecNorm

    pyg = VecLayerNorm(16, trainable=True)
    with torch.no_grad():
        pyg.weight.copy_(torch.linspace(0.5, 1.5, 16))
    ours = MaxMinVecNorm.like(pyg)
    assert isinstance(ours.weight, torch.nn.Parameter) and torch.equal(ours.weight, pyg.weight)
    vec = torch.randn(50, 3, 16, dtype=dtype, generator=torch.Generator().manual_seed(0))
    vec[3] = 0.0  # an atom without vector features
    vec[7, :, 5] = 0.0  # one zero channel
    vec[9, :, :] = vec[9, :, :1]  # all channels of equal length (span zero)
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    torch.testing.assert_close(ours(vec.to(dtype)), pyg(vec), rtol=tol, atol=tol)
    assert torch.equal(ours(torch.zeros_like(vec)), pyg(torch.zeros_like(vec)))


def test_fast_vector_norm_has_finite_gradients_at_zero_vectors():
    """Before: PyG returned early for all-zero input; without that, sqrt(0) would give NaN."""
    from torch_geometric.nn.models.visnet import VecLayerNorm

    from geomfeat.encoders.visnet import MaxMinVecNorm

    norm = MaxMinVecNorm.like(VecLayerNorm(8, trainable=True))
    vec = torch.zeros(4, 3, 8, requires_grad=True)
    vec2 = torch.randn(4, 3, 8).requires_grad_()
    (norm(vec).sum() + norm(vec2).square().sum()).backward()
    assert torch.isfinite(vec.grad).all() and torch.isfinite(vec2.grad).all()
    assert torch.isfinite(norm(torch.zeros(4, 3, 8, dtype=torch.float16))).all()
