"""Every registered encoder reproduces the float64 reference outputs (``../shared/oracle``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import random_rotation

from geomfeat import GeomFeaturizer, list_models
from geomfeat.neighbors import radius_graph

MODELS = list_models()
SMALL = ["ala2_all", "ala2_heavy"]
PROTEIN = ["t4l_heavy", "t4l_all"]


def run(encoder, pos: np.ndarray, z: np.ndarray, dtype=torch.float64):
    """Per-atom (x (F, N, H), vec (F, N, 3, H)) of frames ``pos`` (F, N, 3) in Å."""
    pos_t = torch.as_tensor(pos, dtype=dtype)
    n_frames, n_atoms = pos.shape[:2]
    with torch.inference_mode():
        x, vec = encoder(torch.as_tensor(z).repeat(n_frames), radius_graph(pos_t, encoder.cutoff))
    return (x.view(n_frames, n_atoms, -1).numpy(),
            vec.view(n_frames, n_atoms, 3, -1).numpy())


def as_equivariant(ref: dict, case: str) -> np.ndarray:
    """The oracle in geomfeat's equivariant layout: concat(x[:, :, None], vec) → (F, N, 4, H)."""
    return np.concatenate([ref[f"{case}__x"][:, :, None], ref[f"{case}__vec"]], axis=2)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("case", SMALL)
def test_float64_matches_oracle_on_alanine_dipeptide(model, case, encoder, oracle):
    ref = oracle(model)
    x, vec = run(encoder(model, torch.float64), ref[f"{case}__pos"], ref[f"{case}__z"])
    assert np.abs(x - ref[f"{case}__x"]).max() <= 1e-5
    assert np.abs(vec - ref[f"{case}__vec"]).max() <= 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("case", PROTEIN)
def test_float64_matches_oracle_on_protein(model, case, encoder, oracle):
    ref = oracle(model)
    frames = slice(0, 1)  # one frame per protein case keeps CI short; the benchmark runs all
    x, vec = run(encoder(model, torch.float64), ref[f"{case}__pos"][frames], ref[f"{case}__z"])
    assert np.abs(x - ref[f"{case}__x"][frames]).max() <= 1e-5
    assert np.abs(vec - ref[f"{case}__vec"][frames]).max() <= 1e-5


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("case", SMALL)
def test_float32_public_api_matches_oracle(model, case, weights_url, oracle):
    ref = oracle(model)
    featurizer = GeomFeaturizer(model, select="all", pool="atom", features="equivariant")
    out = featurizer.transform((ref[f"{case}__pos"], ref[f"{case}__z"]))
    assert out.dtype == np.float32
    assert np.abs(out - as_equivariant(ref, case)).max() <= 1e-4


@pytest.mark.parametrize("model", MODELS)
def test_float64_public_api_graph_sum_is_oracle_atom_sum(model, weights_url, oracle):
    ref = oracle(model)
    featurizer = GeomFeaturizer(model, select="all", pool="graph", reduce="sum",
                                features="equivariant", dtype="float64")
    out = featurizer.transform((ref["ala2_all__pos"], ref["ala2_all__z"]))
    assert np.abs(out - as_equivariant(ref, "ala2_all").sum(axis=1)).max() <= 1e-5


@pytest.mark.parametrize("model", MODELS)
def test_rotation_and_translation(model, weights_url, oracle):
    """Scalars are invariant and vectors rotate with the input (proper rotations)."""
    ref = oracle(model)
    pos, z = ref["ala2_all__pos"][:2].astype(np.float64), ref["ala2_all__z"]
    rot = random_rotation(7)
    moved = pos @ rot.T + np.array([12.5, -3.0, 40.0])
    atom = GeomFeaturizer(model, select="all", pool="atom", features="equivariant")
    before, after = atom.transform((pos, z)), atom.transform((moved, z))
    assert np.abs(after[:, :, 0] - before[:, :, 0]).max() <= 1e-4
    rotated = np.einsum("ij,fnjh->fnih", rot, before[:, :, 1:])
    assert np.abs(after[:, :, 1:] - rotated).max() <= 1e-4
    for features in ("scalar", "invariant"):
        graph = GeomFeaturizer(model, select="all", features=features)
        assert np.abs(graph.transform((moved, z)) - graph.transform((pos, z))).max() <= 1e-4


# Reduced-precision options: opt-in, measurably less accurate than float32, still close.
# Bounds: ~3x the per-atom errors measured on alanine dipeptide (benchmarks/precision.py).
REDUCED = {"bfloat16": 0.2, "float16": 0.05}


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("dtype", sorted(REDUCED))
def test_reduced_precision_is_close_but_not_float32(model, dtype, oracle, weights_url):
    ref = oracle(model)
    pos, z = ref["ala2_all__pos"][:2].astype(np.float64), ref["ala2_all__z"]
    options = dict(select="all", pool="atom", features="equivariant")
    expected = as_equivariant(ref, "ala2_all")[:2]
    reduced = GeomFeaturizer(model, dtype=dtype, **options).transform((pos, z))
    full = GeomFeaturizer(model, **options).transform((pos, z))
    assert reduced.dtype == np.float32 and np.isfinite(reduced).all()
    error = np.abs(reduced - expected)
    assert error.max() <= REDUCED[dtype]
    assert error.mean() > 10 * np.abs(full - expected).mean()  # the option did change the math


def test_tf32_needs_cuda():
    with pytest.raises(ValueError, match=r"tf32.*CUDA"):
        GeomFeaturizer(dtype="tf32", device="cpu")
