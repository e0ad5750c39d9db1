"""geomfeat.evaluate.finetune: cached frozen layers + trainable upper layers (opt-in mode)."""

from __future__ import annotations

from types import SimpleNamespace

import mdtraj as md
import numpy as np
import pytest
import torch
from conftest import EXAMPLE

from geomfeat import GeomFeaturizer
from geomfeat.deeptime import MLPLobe, data_loader, train_val_split
from geomfeat.evaluate.finetune import (
    FineTuneEncoder,
    FineTuneLobe,
    LayerCache,
    finetune_vampnet,
)
from geomfeat.evaluate.vampnet import fit_with_early_stopping, pairs_of, validation_score

MODELS = {"visnet-denali": 6, "et-denali": 6, "tensornet-denali": 3}


@pytest.fixture(scope="module")
def trajs():
    traj = md.load(str(EXAMPLE / "ala2.xtc"), top=str(EXAMPLE / "ala2.pdb"))
    return [traj[:14], traj[500:509]]  # two trajectories of different lengths


def featurizer(model: str, **kwargs) -> GeomFeaturizer:
    return GeomFeaturizer(model, select="heavy", device="cpu", batch_size=16, **kwargs)


def layer_counts(model: str) -> list[int]:
    """k = 1 (the default use), 2 (ViSNet: edge features updated inside the trainable part),
    all layers; k = 0 in test_k0_is_the_frozen_pipeline."""
    n = MODELS[model]
    return sorted({1, 2, n})


@pytest.mark.parametrize("model", list(MODELS))
def test_cached_lower_layers_reproduce_the_full_encoder(weights_url, trajs, model):
    """For every k the cache + k upper layers give the encoder's per-atom scalars and vectors
    (features="equivariant", pool="atom"), in any frame order and across trajectories."""
    feat = featurizer(model, pool="atom", features="equivariant")
    reference = np.concatenate(feat.transform(trajs))  # (F, N, 4, H)
    order = torch.randperm(len(reference), generator=torch.Generator().manual_seed(0))
    for k in layer_counts(model):
        cache = LayerCache.build(feat, trajs, n_trainable=k)
        assert cache.n_trainable == k and cache.lengths == [14, 9]
        head = FineTuneEncoder(feat, cache)
        with torch.no_grad():
            out = head.embed(order).numpy()
        scale = np.abs(reference).max()
        np.testing.assert_allclose(out, reference[order.numpy()], rtol=0,
                                   atol=2e-5 * scale, err_msg=f"{model}, k={k}")


def test_k0_is_the_frozen_pipeline(weights_url, trajs):
    """k = 0: the cached outputs pooled by the featurizer's own readout, nothing trainable."""
    feat = featurizer("visnet-denali", pool="residue", features="invariant")
    cache = LayerCache.build(feat, trajs, n_trainable=0)
    head = FineTuneEncoder(feat, cache)
    assert head.encoder_parameters() == []
    assert sum(p.numel() for p in head.parameters() if p.requires_grad) == 0
    with torch.no_grad():
        out = head.embed(torch.arange(cache.n_frames)).numpy()
    np.testing.assert_allclose(out, np.concatenate(feat.transform(trajs)), rtol=1e-6,
                               atol=1e-6)
    assert out.shape == (23, 3, 128)


def test_standardization_uses_the_given_frames(weights_url, trajs):
    feat = featurizer("visnet-denali")
    cache = LayerCache.build(feat, trajs, n_trainable=1)
    head = FineTuneEncoder(feat, cache).fit_standardization(cache.frame_indices()[0])
    with torch.no_grad():
        z = head(torch.arange(14)).numpy()
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(z.std(0)[z.std(0) > 0.5], 1, atol=1e-3)


def test_training_changes_only_the_upper_layers_and_the_lobe(weights_url, trajs):
    feat = featurizer("visnet-denali")
    encoder_before = {k: v.clone() for k, v in feat.encoder.state_dict().items()}
    cache = LayerCache.build(feat, trajs, n_trainable=1)
    cache_before = {k: v.clone() for k, v in cache.nodes.items()}
    head = FineTuneEncoder(feat, cache)
    head.fit_standardization(cache.frame_indices())
    upper_before = {k: v.clone() for k, v in head.upper.state_dict().items()}
    torch.manual_seed(0)
    lobe = FineTuneLobe(head, MLPLobe(64, 3, width=16))
    lobe_before = {k: v.clone() for k, v in lobe.lobe.state_dict().items()}
    vnet = finetune_vampnet(lobe, learning_rate=1e-2, encoder_learning_rate=1e-3)
    assert [g["lr"] for g in vnet.optimizer.param_groups] == [1e-2, 1e-3]
    train, _, _ = train_val_split(cache.frame_indices(), lagtime=1, n_blocks=2, seed=0)
    vnet.fit(data_loader(train, 16, shuffle=True, seed=0), n_epochs=2)

    # the featurizer's encoder (all its layers, the copied one included) and the cache: untouched
    for key, value in feat.encoder.state_dict().items():
        assert torch.equal(value, encoder_before[key]), key
    for key, value in cache.nodes.items():
        assert torch.equal(value, cache_before[key]), key
    # the trainable copy of the last layer and the lobe moved
    moved = [k for k, v in head.upper.state_dict().items() if not torch.equal(v, upper_before[k])]
    assert any(k.startswith("encoder.vis_mp_layers.5.") for k in moved)
    assert all(k.startswith(("encoder.vis_mp_layers.5.", "encoder.out_norm.",
                             "encoder.vec_out_norm.")) for k in moved), moved
    assert any(not torch.equal(v, lobe_before[k]) for k, v in lobe.lobe.state_dict().items())
    # only the last interaction layer and the output norms are trainable
    n_params = sum(p.numel() for p in head.encoder_parameters())
    expected = sum(p.numel() for p in feat.encoder.vis_mp_layers[-1].parameters())
    expected += sum(p.numel() for p in feat.encoder.out_norm.parameters())
    expected += sum(p.numel() for p in feat.encoder.vec_out_norm.parameters())
    assert n_params == expected


def test_bad_requests_are_refused(weights_url, trajs):
    feat = featurizer("visnet-denali")
    with pytest.raises(ValueError, match="n_trainable"):
        LayerCache.build(feat, trajs, n_trainable=7)
    with pytest.raises(NotImplementedError, match="float32 or float64"):
        LayerCache.build(featurizer("visnet-denali", dtype="bfloat16"), trajs, n_trainable=1)
    other = md.load(str(EXAMPLE / "ala2.xtc"), top=str(EXAMPLE / "ala2.pdb"))[:5]
    with pytest.raises(NotImplementedError, match="last layer only"):
        LayerCache.build(featurizer("visnet-denali", layers="all"), trajs, n_trainable=1)
    fake = SimpleNamespace(card=SimpleNamespace(architecture="schnet"), model="schnet-x",
                           dtype="float32")
    with pytest.raises(NotImplementedError, match="visnet, et, tensornet"):
        LayerCache.build(fake, trajs, n_trainable=1)
    heavy = [a.index for a in other.topology.atoms if a.element.symbol != "H"]
    with pytest.raises(ValueError, match="differ"):
        LayerCache.build(feat, [trajs[0], other.atom_slice(heavy[1:])], n_trainable=1)


def test_pairs_never_cross_pieces():
    pieces = [np.arange(5, dtype=np.float32)[:, None], np.arange(10, 13)[:, None],
              np.arange(20, 22)[:, None]]  # the last piece is too short for lag 2
    x0, xt = pairs_of(pieces, 2)
    assert x0.dtype == torch.float32
    assert x0[:, 0].tolist() == [0, 1, 2, 10] and xt[:, 0].tolist() == [2, 3, 4, 12]
    with pytest.raises(ValueError, match="longer than the lag"):
        pairs_of(pieces[2:], 2)


def test_early_stopping_restores_the_best_validation_epoch():
    """Synthetic two-state switching hidden in noise; the module ends at its best epoch."""
    from deeptime.decomposition.deep import VAMPNet

    rng = np.random.default_rng(0)
    state = np.cumsum(rng.random(3000) < 0.02) % 2
    x = (np.stack([state, -state], 1) + rng.normal(scale=0.5, size=(3000, 2))).astype(np.float32)
    train, val = pairs_of([x[:2000]], 5), pairs_of([x[2000:]], 5)
    torch.manual_seed(0)
    lobe = MLPLobe(2, 2, width=8, depth=1)
    vnet = VAMPNet(lobe=lobe, learning_rate=1e-2)
    res = fit_with_early_stopping(vnet, lobe, train, val, batch_size=128, steps_per_epoch=5,
                                  max_epochs=8, patience=3, lr_patience=1, seed=0)
    assert res["val_vamp2"] == pytest.approx(max(res["val_curve"]), abs=1e-5)
    assert res["best_epoch"] == int(np.argmax(res["val_curve"])) + 1
    assert validation_score(vnet, lobe, val) == pytest.approx(res["val_vamp2"], abs=1e-5)
    assert validation_score(vnet, lobe, val, batch_size=100) == pytest.approx(
        res["val_vamp2"], abs=1e-5)  # outputs in batches, one covariance estimate
    assert 1.2 < res["val_vamp2"] <= 2.0  # the switching process is found (at most 2 states)
