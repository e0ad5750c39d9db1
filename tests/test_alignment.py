"""geomfeat.evaluate.alignment: canonical correlations of slow components with descriptors."""

from __future__ import annotations

import json
import subprocess
import sys

import matplotlib
import numpy as np
import pytest

from geomfeat.evaluate import AlignmentResult, alignment, canonical_correlations, plot_alignment

matplotlib.use("Agg")


def ar1(n: int, tau: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance AR(1) process with correlation time ``tau`` frames."""
    a = np.exp(-1.0 / tau)
    out = np.empty(n)
    out[0] = rng.normal()
    noise = rng.normal(scale=np.sqrt(1 - a * a), size=n)
    for t in range(1, n):
        out[t] = a * out[t - 1] + noise[t]
    return out


def slow_system(seed: int = 0, n: int = 20000):
    """Two slow processes hidden, by a random linear mixing, among 8 fast ones in 10 features."""
    rng = np.random.default_rng(seed)
    slow = np.stack([ar1(n, 200.0, rng), ar1(n, 60.0, rng)], 1)
    fast = rng.normal(size=(n, 8))
    embeddings = np.concatenate([slow, fast], 1) @ rng.normal(size=(10, 10))
    return slow, fast, embeddings, rng


class TestCanonicalCorrelations:
    def test_linear_mixing_is_recovered_with_correlation_one(self):
        rng = np.random.default_rng(1)
        x = rng.normal(size=(500, 3))
        y = x @ rng.normal(size=(3, 5)) + 4.0  # 5 descriptors spanning the same 3 directions
        rho, wx, wy = canonical_correlations(x, y)
        assert rho.shape == (3,)
        np.testing.assert_allclose(rho, 1.0, atol=1e-10)
        u, v = (x - x.mean(0)) @ wx, (y - y.mean(0)) @ wy
        np.testing.assert_allclose(u.std(0), 1.0, atol=1e-10)  # unit-variance canonical variates
        np.testing.assert_allclose(u, v, atol=1e-8)

    def test_independent_noise_has_correlation_near_zero(self):
        rng = np.random.default_rng(2)
        rho, _, _ = canonical_correlations(rng.normal(size=(20000, 2)),
                                           rng.normal(size=(20000, 4)))
        assert rho.max() < 0.05  # ~ sqrt(p q / T) for independent samples

    def test_known_partial_correlation(self):
        """y = x + noise of equal variance: the canonical correlation is 1/sqrt(2)."""
        rng = np.random.default_rng(3)
        x = rng.normal(size=(200000, 1))
        rho, _, _ = canonical_correlations(x, x + rng.normal(size=x.shape))
        assert rho[0] == pytest.approx(1 / np.sqrt(2), abs=5e-3)

    def test_rank_deficient_descriptors_are_reduced(self):
        rng = np.random.default_rng(4)
        x = rng.normal(size=(300, 4))
        y = np.concatenate([x[:, :1], 2 * x[:, :1]], 1)  # rank 1
        rho, _, wy = canonical_correlations(x, y)
        assert rho.shape == (1,) and wy.shape == (2, 1)
        assert rho[0] == pytest.approx(1.0)

    def test_bad_shapes_are_rejected(self):
        with pytest.raises(ValueError, match="same T"):
            canonical_correlations(np.zeros((10, 2)), np.zeros((9, 2)))
        with pytest.raises(ValueError, match="constant"):
            canonical_correlations(np.ones((10, 2)), np.random.default_rng(0).normal(size=(10, 2)))


class TestAlignment:
    def test_slow_components_recover_the_hidden_slow_descriptors(self):
        slow, fast, embeddings, rng = slow_system()
        # descriptors: a different mixing of the slow processes, plus an unrelated fast one
        descriptors = np.concatenate([slow @ rng.normal(size=(2, 2)), fast[:, :1]], 1)
        res = alignment(embeddings, descriptors, lagtime=10, n_components=2,
                        descriptor_names=["a", "b", "fast"])
        assert isinstance(res, AlignmentResult)
        np.testing.assert_allclose(res.canonical_correlations, 1.0, atol=1e-3)
        np.testing.assert_allclose(res.explained, 1.0, atol=1e-3)
        assert np.abs(res.correlations[:, 2]).max() < 0.05  # the fast descriptor: unrelated
        assert res.timescales[0] > res.timescales[1] > 10  # slowest first
        assert [c.shape for c in res.components] == [(20000, 2)]

    def test_unrelated_descriptors_have_correlation_near_zero(self):
        _, _, embeddings, _ = slow_system()
        rng = np.random.default_rng(9)
        unrelated = np.stack([ar1(20000, 100.0, rng), ar1(20000, 100.0, rng)], 1)
        res = alignment(embeddings, unrelated, lagtime=10, n_components=2)
        # slow independent processes: far fewer effective samples than frames, hence the bound
        assert res.canonical_correlations.max() < 0.15
        assert res.explained.max() < 0.03

    def test_lists_of_trajectories_and_vamp(self):
        slow, _, embeddings, _ = slow_system(seed=5)
        parts = [embeddings[:12000], embeddings[12000:]]
        res = alignment(parts, [slow[:12000], slow[12000:]], lagtime=5, n_components=2,
                        method="vamp")
        assert res.component_names == ["VC1", "VC2"] and res.n_frames == 20000
        assert [len(c) for c in res.components] == [12000, 8000]
        np.testing.assert_allclose(res.canonical_correlations, 1.0, atol=1e-3)

    def test_one_component_against_many_descriptors(self):
        slow, _, embeddings, _ = slow_system(seed=6)
        res = alignment(embeddings, slow, lagtime=10, n_components=1)
        assert res.canonical_correlations.shape == (1,)
        assert res.correlations.shape == (1, 2)
        # the slowest component is the slower process, not the faster one (the two are
        # independent, but over ~100 correlation times their sample correlation is not 0)
        assert abs(res.correlations[0, 0]) > 0.99 > 0.5 > abs(res.correlations[0, 1])

    def test_inputs_are_validated(self):
        slow, _, embeddings, _ = slow_system(n=500)
        with pytest.raises(ValueError, match="same frames"):
            alignment(embeddings, slow[:-1], lagtime=1)
        with pytest.raises(ValueError, match="names"):
            alignment(embeddings, slow, lagtime=1, descriptor_names=["one"])
        with pytest.raises(ValueError, match="method"):
            alignment(embeddings, slow, lagtime=1, method="pca")
        with pytest.raises(ValueError, match="lagtime"):
            alignment(embeddings, slow, lagtime=0)
        bad = slow.copy()
        bad[3, 0] = np.nan
        with pytest.raises(ValueError, match="non-finite"):
            alignment(embeddings, bad, lagtime=1)

    def test_json_and_plot(self, tmp_path):
        slow, _, embeddings, _ = slow_system(n=3000)
        res = alignment(embeddings, slow, lagtime=5, descriptor_names=["s1", "s2"])
        d = json.loads(json.dumps(res.to_dict()))
        assert d["canonical_correlations"] == pytest.approx(res.canonical_correlations.tolist())
        assert set(d["correlations"]["IC1"]) == {"s1", "s2"}
        fig = plot_alignment(res)
        fig.savefig(tmp_path / "a.png")
        assert (tmp_path / "a.png").stat().st_size > 1000


def test_the_function_is_not_shadowed_by_its_module():
    """``from geomfeat.evaluate import alignment`` is the function, in a fresh interpreter."""
    code = ("from geomfeat.evaluate import alignment, plot_alignment; import geomfeat.evaluate "
            "as e; from geomfeat.evaluate.alignment import alignment as f; "
            "assert callable(alignment) and e.alignment is alignment is f")
    subprocess.run([sys.executable, "-c", code], check=True)
