"""geomfeat.evaluate.finetune: cached frozen layers + trainable upper layers (opt-in mode)."""

from __future__ import annotations

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

MODELS = {"visnet-denali": 6, "et-denali": 6, "tensornet-denali": 3}


@pytest.fixture(scope="module")
def trajs():
    traj = md.load(str(EXAMPLE / "ala2.xtc"), top=str(EXAMPLE / "ala2.pdb"))
    return [traj[:30], traj[500:521]]  # two trajectories of different lengths


def featurizer(model: str, **kwargs) -> GeomFeaturizer:
    return GeomFeaturizer(model, select="heavy", device="cpu", batch_size=16, **kwargs)


def layer_counts(model: str) -> list[int]:
    n = MODELS[model]
    return sorted({0, 1, 2, n})


@pytest.mark.parametrize("model", list(MODELS))
def test_cached_lower_layers_reproduce_the_full_encoder(weights_url, trajs, model):
    """For every k the cache + k upper layers give the encoder's per-atom scalars and vectors
    (features="equivariant", pool="atom"), in any frame order and across trajectories."""
    feat = featurizer(model, pool="atom", features="equivariant")
    reference = np.concatenate(feat.transform(trajs))  # (F, N, 4, H)
    order = torch.randperm(len(reference), generator=torch.Generator().manual_seed(0))
    for k in layer_counts(model):
        cache = LayerCache.build(feat, trajs, n_trainable=k)
        assert cache.n_trainable == k and cache.lengths == [30, 21]
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
    assert out.shape == (51, 3, 128)


def test_standardization_uses_the_given_frames(weights_url, trajs):
    feat = featurizer("visnet-denali")
    cache = LayerCache.build(feat, trajs, n_trainable=1)
    head = FineTuneEncoder(feat, cache).fit_standardization(cache.frame_indices()[0])
    with torch.no_grad():
        z = head(torch.arange(30)).numpy()
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
    assert any(k.startswith("layers.0.") for k in moved)
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
    heavy = [a.index for a in other.topology.atoms if a.element.symbol != "H"]
    with pytest.raises(ValueError, match="differ"):
        LayerCache.build(feat, [trajs[0], other.atom_slice(heavy[1:])], n_trainable=1)
