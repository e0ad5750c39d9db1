"""device="cuda" end to end: the same embeddings as the CPU within float32 tolerance.

Marked ``gpu``: deselected by default (CI has no GPU; every other test covers the CPU path), run
with ``pytest -m gpu tests/test_gpu.py`` on a GPU machine (``benchmarks/gpu_check.sh``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geomfeat import GeomFeaturizer, list_models

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("model", list_models())
@pytest.mark.parametrize("case", ["ala2_all", "t4l_heavy"])
def test_cuda_equals_cpu_within_float32(model, case, oracle, weights_url):
    ref = oracle(model)
    frames = (ref[f"{case}__pos"][:2].astype(np.float64), ref[f"{case}__z"])
    options = dict(select="all", pool="atom", features="equivariant")
    cpu = GeomFeaturizer(model, device="cpu", **options).transform(frames)
    gpu = GeomFeaturizer(model, device="cuda", **options).transform(frames)
    assert np.abs(gpu - cpu).max() <= 1e-3  # float32; the protein's outliers reach ~1e-4
    assert np.abs(gpu - cpu).mean() <= 1e-6


def test_tf32_runs_and_restores_full_float32(oracle, weights_url):
    ref = oracle("visnet-denali")
    frames = (ref["ala2_all__pos"][:2].astype(np.float64), ref["ala2_all__z"])
    before = torch.get_float32_matmul_precision()
    out = GeomFeaturizer(select="all", device="cuda", dtype="tf32").transform(frames)
    assert np.isfinite(out).all()
    assert torch.get_float32_matmul_precision() == before


@pytest.mark.parametrize("model", list_models())
def test_compiled_messages_equal_eager_on_cuda(model, oracle, weights_url, monkeypatch):
    ref = oracle(model)
    frames = (ref["t4l_heavy__pos"][:2].astype(np.float64), ref["t4l_heavy__z"])
    options = dict(select="all", pool="atom", features="equivariant", device="cuda")
    monkeypatch.setenv("GEOMFEAT_COMPILE", "never")
    eager = GeomFeaturizer(model, **options).transform(frames)
    monkeypatch.setenv("GEOMFEAT_COMPILE", "auto")  # the default: compiled on CUDA
    compiled = GeomFeaturizer(model, **options).transform(frames)
    from geomfeat.encoders import et, tensornet, visnet

    fns = (visnet._vis_mp_messages, visnet._vis_mp_messages_edges, et._attention_messages,
           tensornet._embedding_messages, tensornet._interaction_messages)
    assert all(fn.failed is None for fn in fns), [fn.failed for fn in fns]
    assert np.abs(compiled - eager).max() <= 1e-4
    assert np.abs(compiled - eager).mean() <= 1e-6
