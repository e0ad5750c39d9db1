"""geomfeat.deeptime: VAMPNet lobes and time-lagged datasets (tiny synthetic data, fast)."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest
import torch
from conftest import EXAMPLE, ROOT
from deeptime.decomposition import VAMP
from deeptime.decomposition.deep import VAMPNet
from deeptime.util.data import TrajectoriesDataset

from geomfeat.deeptime import (
    AttentionLobe,
    MixerLobe,
    MLPLobe,
    count_parameters,
    data_loader,
    split_blocks,
    time_lagged_dataset,
    train_val_split,
    width_for_budget,
)

LOBES = {
    "mlp": (lambda: MLPLobe(12, 4, width=16), (12,)),
    "mlp-flat": (lambda: MLPLobe(3 * 8, 4, width=16), (3, 8)),
    "mixer": (lambda: MixerLobe(3, 8, 4, width=16), (3, 8)),
    "attention": (lambda: AttentionLobe(8, 4, n_tokens=3, width=16), (3, 8)),
    "attention-set": (lambda: AttentionLobe(8, 4, width=16), (5, 8)),
}


def labelled_trajs(lengths=(50, 37, 80)) -> list[np.ndarray]:
    """Frames ``[trajectory, frame index]`` (float64 on purpose)."""
    return [np.stack([np.full(n, i), np.arange(n)], 1).astype(np.float64)
            for i, n in enumerate(lengths)]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def two_state_tokens(n: int = 600, seed: int = 0, n_trajs: int = 2) -> list[np.ndarray]:
    """Tokens (T, 3, 8) of a slow two-state process in noise (token 1, channel 0)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_trajs):
        state = np.cumsum(rng.random(n) < 0.02) % 2
        x = rng.normal(size=(n, 3, 8)).astype(np.float32)
        x[:, 1, 0] += 3.0 * (2.0 * state - 1.0)
        out.append(x)
    return out


# ----------------------------------------------------------------------------- lobes

@pytest.mark.parametrize("name", LOBES)
def test_lobe_shapes_and_softmax(name):
    make, frame = LOBES[name]
    lobe = make()
    x = torch.randn(7, *frame)
    y = lobe(x)
    assert y.shape == (7, 4) and y.dtype == torch.float32
    assert torch.all(y >= 0)
    torch.testing.assert_close(y.sum(1), torch.ones(7))
    y.sum().backward()
    assert all(p.grad is not None for p in lobe.parameters())


def test_lobes_linear_head_and_shape_errors():
    assert MLPLobe(5, 3, width=8, softmax=False)(torch.randn(4, 5)).shape == (4, 3)
    with pytest.raises(ValueError, match="expected"):
        MixerLobe(3, 8, 4)(torch.randn(2, 4, 8))
    with pytest.raises(ValueError, match="expected"):
        AttentionLobe(8, 4, n_tokens=3)(torch.randn(2, 3, 9))
    with pytest.raises(ValueError, match="multiple"):
        AttentionLobe(8, 4, width=10, heads=4)


def test_attention_without_positions_is_permutation_invariant():
    torch.manual_seed(0)
    lobe = AttentionLobe(8, 4, width=16).eval()
    x = torch.randn(5, 6, 8)
    torch.testing.assert_close(lobe(x), lobe(x[:, torch.randperm(6)]))


def test_width_for_budget():
    for factory, step in ((lambda w: MLPLobe(64, 5, width=w), 1),
                          (lambda w: MixerLobe(3, 64, 5, width=w), 1),
                          (lambda w: AttentionLobe(64, 5, n_tokens=3, width=w), 4)):
        w = width_for_budget(factory, 8000, step=step, high=256)
        assert w % step == 0
        assert abs(count_parameters(factory(w)) - 8000) < 0.1 * 8000


@pytest.mark.parametrize("name", ["mlp-flat", "mixer", "attention"])
def test_lobes_train_inside_deeptime_vampnet(name):
    torch.manual_seed(0)
    make, _ = LOBES[name]
    lobe = make()
    before = [p.detach().clone() for p in lobe.parameters()]
    train, val, _ = train_val_split(two_state_tokens(), lagtime=5, n_blocks=4, seed=0)
    vnet = VAMPNet(lobe=lobe, learning_rate=1e-2)
    vnet.fit(data_loader(train, 128, shuffle=True, seed=0), n_epochs=10,
             validation_loader=data_loader(val, len(val)))
    scores = vnet.validation_scores
    assert scores.shape == (10, 2) and np.all(np.isfinite(scores))
    assert scores[-1, 1] > 1.3  # the slow two-state process is found (max 4, trivial 1)
    assert any(not torch.equal(a, b) for a, b in zip(before, lobe.parameters(), strict=True))
    model = vnet.fetch_model()
    out = model.transform(two_state_tokens(n=20, seed=1)[0])
    assert out.shape == (20, 4) and out.dtype == np.float32


# ----------------------------------------------------------------------------- datasets

def assert_pairs_within_trajectories(x0: np.ndarray, xt: np.ndarray, lag: int) -> None:
    x0, xt = np.asarray(x0), np.asarray(xt)
    np.testing.assert_array_equal(x0[:, 0], xt[:, 0])  # same trajectory
    np.testing.assert_array_equal(xt[:, 1] - x0[:, 1], lag)  # exactly one lag apart


@pytest.mark.parametrize("lag", [1, 7, 40])
def test_time_lagged_dataset_never_pairs_across_trajectories(lag):
    trajs = labelled_trajs()
    ds = time_lagged_dataset(trajs, lag)
    assert isinstance(ds, TrajectoriesDataset)
    assert len(ds) == sum(max(len(t) - lag, 0) for t in trajs)
    x0, xt = ds[:]
    assert x0.dtype == np.float32 and xt.dtype == np.float32
    assert_pairs_within_trajectories(x0, xt, lag)
    for i in range(len(ds)):  # item access too
        assert_pairs_within_trajectories(*(np.atleast_2d(a) for a in ds[i]), lag)
    batches = list(data_loader(ds, 16, shuffle=True, seed=1))
    assert all(b[0].dtype == torch.float32 and b[1].dtype == torch.float32 for b in batches)
    b0 = torch.cat([b[0] for b in batches]).numpy()
    bt = torch.cat([b[1] for b in batches]).numpy()
    assert len(b0) == len(ds)
    assert_pairs_within_trajectories(b0, bt, lag)


def test_time_lagged_dataset_inputs():
    ds = time_lagged_dataset(np.zeros((10, 2)), 3)  # one array = one trajectory
    assert len(ds) == 7
    with pytest.raises(ValueError, match="positive"):
        time_lagged_dataset(labelled_trajs(), 0)
    with pytest.raises(ValueError, match="one frame shape"):
        time_lagged_dataset([np.zeros((10, 2)), np.zeros((10, 3))], 1)


@pytest.mark.parametrize("by", ["block", "trajectory"])
def test_train_val_split_is_disjoint_and_respects_edges(by):
    trajs = labelled_trajs((200, 150, 120))
    lag = 4
    train, val, info = train_val_split(trajs, lag, by=by, val_fraction=0.3, n_blocks=5, seed=3)
    assert info["by"] == by and info["seed"] == 3
    x_train, xt_train = train[:]
    x_val, xt_val = val[:]
    assert_pairs_within_trajectories(x_train, xt_train, lag)
    assert_pairs_within_trajectories(x_val, xt_val, lag)
    pieces = info["train"] + info["validation"]
    for i, a, b in pieces:  # no pair spans a block edge
        assert len(trajs[i][a:b]) > lag
    inside = lambda x, parts: np.array([any(i == p[0] and p[1] <= f < p[2]  # noqa: E731
                                            for p in parts) for i, f in x])
    assert inside(np.concatenate([x_train, xt_train]), info["train"]).all()
    assert inside(np.concatenate([x_val, xt_val]), info["validation"]).all()
    assert not inside(np.concatenate([x_val, xt_val]), info["train"]).any()
    # every frame is in exactly one piece; pair counts add up
    cover = sorted((i, a, b) for i, a, b in pieces)
    assert sum(b - a for _, a, b in cover) == sum(len(t) for t in trajs)
    assert len(train) + len(val) == sum(b - a - lag for _, a, b in cover)
    _, _, again = train_val_split(trajs, lag, by=by, val_fraction=0.3, n_blocks=5, seed=3)
    assert again == info  # reproducible


def test_split_blocks():
    assert split_blocks([10, 3], 3) == [(0, 0, 3), (0, 3, 7), (0, 7, 10), (1, 0, 1),
                                        (1, 1, 2), (1, 2, 3)]
    with pytest.raises(ValueError, match="two trajectories"):
        train_val_split([np.zeros((10, 1))], 2, by="trajectory")


# ----------------------------------------------------------------------------- with geomfeat

def test_residue_tokens_of_ala2_into_vampnet_and_vamp(weights_url):
    import mdtraj as md

    from geomfeat import GeomFeaturizer

    traj = md.load(EXAMPLE / "ala2.xtc", top=EXAMPLE / "ala2.pdb")[:120]
    tokens = GeomFeaturizer("visnet-denali", pool="residue").transform([traj[:60], traj[60:]])
    assert [t.shape for t in tokens] == [(60, 3, 64), (60, 3, 64)]
    assert all(t.dtype == np.float32 for t in tokens)
    ds = time_lagged_dataset(tokens, 2)
    assert ds[:][0].dtype == np.float32 and ds[:][0].shape == (116, 3, 64)
    torch.manual_seed(0)
    vnet = VAMPNet(lobe=MixerLobe(3, 64, 3, width=8, depth=1), learning_rate=1e-3)
    vnet.fit(data_loader(ds, 64, shuffle=True, seed=0), n_epochs=2)
    chi = vnet.fetch_model().transform(tokens)
    assert [c.shape for c in chi] == [(60, 3), (60, 3)]
    graph = [t.sum(1) for t in tokens]  # reduce="sum": graph = sum of residue tokens
    model = VAMP(lagtime=2, dim=2).fit(graph).fetch_model()
    assert model.transform(graph[0]).shape == (60, 2)


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                    reason="the benchmark plots with matplotlib (examples extra)")
def test_kinetics_benchmark_is_a_thin_wrapper_over_geomfeat_compare(weights_url, tmp_path,
                                                                     monkeypatch):
    """benchmarks/kinetics.py runs ``geomfeat compare`` and writes its report to ``--out``."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    sys.modules.pop("kinetics", None)
    import kinetics

    status = kinetics.main([
        str(EXAMPLE / "ala2.pdb"), str(EXAMPLE / "ala2.xtc"), "--stride", "40", "--lag", "40ps",
        "--features", "visnet-denali:graph:scalar:last", "torsions", "--seeds", "0",
        "--n-blocks", "4", "--budget", "300", "--steps-per-epoch", "2", "--max-epochs", "2",
        "--restarts", "1", "--batch-size", "16", "--cache", str(tmp_path / "cache"), "-q",
        "--out", str(tmp_path), "--name", "k"])
    assert status == 0
    report = json.loads((tmp_path / "k.json").read_text())
    assert report["settings"]["features"] == ["visnet-denali:graph:scalar:last", "torsions",
                                              "distances"]
    assert [d["frames"] for d in report["lags"]] == [1]
    assert (tmp_path / "k.md").exists() and (tmp_path / "k_scores.png").exists()
