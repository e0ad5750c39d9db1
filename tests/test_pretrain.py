"""Specification of ``geomfeat.pretrain``: denoising pre-training with Lightning.

Tiny encoders (width 16, 2 layers) on the heavy atoms of the alanine-dipeptide example keep every
training here to seconds on two CPU cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from conftest import EXAMPLE

from geomfeat.errors import CheckpointMismatchError, GeomfeatError, InputError
from geomfeat.pretrain import (
    DenoisingModel,
    PretrainConfig,
    TrajectorySource,
    pretrain,
)
from geomfeat.pretrain.datasets import ConformerDataset, collate_conformers
from geomfeat.pretrain.model import batch_edges

TINY = {"architecture": "visnet", "hidden_channels": 16, "num_layers": 2, "num_rbf": 16,
        "cutoff": 5.0}


def source(stop: int = 400, select: str = "heavy") -> TrajectorySource:
    return TrajectorySource(EXAMPLE / "ala2.xtc", EXAMPLE / "ala2.pdb", select=select,
                            stop=stop)


def tiny(**kwargs) -> PretrainConfig:
    settings = {**TINY, "batch_size": 8, "checkpoint_every": 4, "log_every": 1,
                "max_epochs": 50, **kwargs}
    return PretrainConfig(**settings)


def weights(pth: Path) -> dict[str, torch.Tensor]:
    return torch.load(pth, map_location="cpu", weights_only=True)


def assert_same_bits(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_loss_of_a_tiny_model_falls_on_a_tiny_dataset(tmp_path):
    result = pretrain([source(200)], tmp_path / "run", tiny(max_steps=60, lr=3e-3),
                      progress=False)
    rows = [line.split(",") for line in (tmp_path / "run/metrics.csv").read_text()
            .splitlines()]
    col = rows[0].index("train_loss_step")
    losses = [float(r[col]) for r in rows[1:] if r[col]]
    assert np.mean(losses[-10:]) < 0.9 * np.mean(losses[:10])
    assert result.steps == 60
    assert (tmp_path / "run/loss.png").stat().st_size > 0
    card = json.loads(result.card.read_text())
    assert card["training"]["steps"] == 60 and np.isfinite(card["training"]["best_val_loss"])


def test_threads_setting_holds_during_training_and_is_restored_after(tmp_path):
    seen = []

    class Record(L.Callback):
        def on_train_batch_start(self, *args):
            seen.append(torch.get_num_threads())

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        result = pretrain([source(64)], tmp_path / "run", tiny(max_steps=2, threads=1),
                          progress=False, callbacks=[Record()])
        assert seen == [1, 1]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert json.loads(result.card.read_text())["training"]["threads"] == 1


def test_predicted_noise_rotates_with_the_input():
    torch.manual_seed(0)
    model = DenoisingModel("visnet", {k: v for k, v in TINY.items() if k != "architecture"})
    dataset = ConformerDataset([source(40)], "train", val_fraction=0)
    batch = collate_conformers([dataset[(i, i)] for i in range(3)])
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(1)))
    pred = model(batch.z, batch_edges(batch, model.cutoff))
    batch.pos = batch.pos @ q.T
    rotated = model(batch.z, batch_edges(batch, model.cutoff))
    assert torch.allclose(rotated, pred @ q.T, atol=1e-5)
    assert pred.abs().max() > 1e-3  # not trivially zero


def test_resume_with_changed_settings_is_refused_naming_the_setting(tmp_path):
    pretrain([source(200)], tmp_path / "r", tiny(max_steps=4, val_fraction=0), progress=False)
    with pytest.raises(GeomfeatError, match=r"setting 'lr' was 0.0005, now 0.001"):
        pretrain([source(200)], tmp_path / "r", tiny(max_steps=8, val_fraction=0, lr=1e-3),
                 progress=False, resume="auto")
    with pytest.raises(GeomfeatError, match="already holds a run"):
        pretrain([source(200)], tmp_path / "r", tiny(max_steps=8, val_fraction=0),
                 progress=False)


def test_a_card_round_trips_into_geomfeaturizer_the_cli_and_the_model_list(tmp_path, capsys):
    import mdtraj as md

    from geomfeat import GeomFeaturizer
    from geomfeat.cli import main

    result = pretrain([source(200)], tmp_path / "tiny", tiny(max_steps=3), progress=False,
                      install=True)
    traj = md.load(str(EXAMPLE / "ala2.xtc"), top=str(EXAMPLE / "ala2.pdb"))[:20]
    emb = GeomFeaturizer(str(result.card)).transform(traj)
    assert emb.shape == (20, 16) and np.isfinite(emb).all()
    np.testing.assert_array_equal(GeomFeaturizer.from_checkpoint(result.checkpoint)
                                  .transform(traj), emb)
    np.testing.assert_array_equal(GeomFeaturizer("tiny").transform(traj), emb)  # local-models
    out = tmp_path / "emb.npy"
    assert main(["embed", str(EXAMPLE / "ala2.xtc"), str(EXAMPLE / "ala2.pdb"), "-o", str(out),
                 "--model", str(result.card), "--stop", "20", "-q"]) == 0
    np.testing.assert_array_equal(np.load(out), emb)
    assert main(["models"]) == 0
    assert "tiny " in capsys.readouterr().out
    from geomfeat.evaluate.features import parse_spec  # geomfeat compare takes it too

    assert parse_spec("tiny:residue")[0]["model"] == "tiny"
    assert parse_spec(f"{result.card}:graph")[0]["model"] == str(result.card)


def test_a_tampered_checkpoint_or_unseen_elements_are_refused(tmp_path):
    from geomfeat import GeomFeaturizer

    result = pretrain([source(200)], tmp_path / "t", tiny(max_steps=1, val_fraction=0),
                      progress=False)
    positions = np.zeros((2, 3, 3))
    positions[:, :, 0] = [0.0, 1.0, 2.0]
    with pytest.raises(InputError, match=r"are S, outside t's pre-training elements \(C, N, O\)"):
        GeomFeaturizer(str(result.card), select="all").transform(
            (positions, np.array([6, 16, 8])))
    state = weights(result.checkpoint)
    state["representation_model.embedding.weight"] += 1
    torch.save(state, result.checkpoint)
    with pytest.raises(GeomfeatError, match=r"does not match the SHA-256"):
        GeomFeaturizer(str(result.card)).transform((positions, np.array([6, 6, 8])))


def test_loading_is_strict_and_names_the_key():
    from geomfeat.pretrain import load_state

    hp = {k: v for k, v in TINY.items() if k != "architecture"}
    visnet = DenoisingModel("visnet", hp)
    et = DenoisingModel("et", hp)
    with pytest.raises(CheckpointMismatchError, match=r"unexpected key representation_model"
                                                      r".*another architecture"):
        load_state(visnet, et.state_dict(), "et.pth")
    wide = DenoisingModel("visnet", {**hp, "hidden_channels": 32}).state_dict()
    with pytest.raises(CheckpointMismatchError, match=r"embedding.weight has shape \(100, 32\)"):
        load_state(visnet, wide, "wide.pth")
    partial = {k: v for k, v in visnet.state_dict().items() if k != "vec_out.output_network.1"
               ".vec2_proj.weight"}
    with pytest.raises(CheckpointMismatchError, match=r"missing key vec_out\.output_network\.1"):
        load_state(visnet, partial, "partial.pth")


def test_bad_data_gets_one_clear_error(tmp_path):
    positions = np.random.default_rng(0).normal(size=(60, 4, 3)) * 2
    positions[33, 2, 1] = np.nan
    z = np.array([6, 6, 7, 8])
    nan = TrajectorySource((positions, z), select="all")
    with pytest.raises(InputError, match=r"frame 33 of array input .* non-finite"):
        pretrain([nan], tmp_path / "nan", tiny(max_steps=20, batch_size=4, val_fraction=0),
                 progress=False)
    with pytest.raises(InputError, match=r"training split .* has 0 conformers"):
        pretrain([source(0)], tmp_path / "empty", tiny(), progress=False)
    with pytest.raises(InputError, match="no element the encoders accept"):
        TrajectorySource((positions, np.array([6, 6, 0, 8])), select="all")
    with pytest.raises(InputError, match=r"validation split .* is empty"):
        pretrain([source(30)], tmp_path / "noval", tiny(val_block=30), progress=False)


def test_extended_xyz_conformers_read_like_the_trajectory(tmp_path):
    ase_io = pytest.importorskip("ase.io")
    from ase import Atoms

    from geomfeat.pretrain import ExtXYZSource

    traj = source(5, select="all")
    frames = [traj.conformer(i) for i in range(5)]
    ase_io.write(tmp_path / "c.xyz", [Atoms(numbers=z, positions=p) for z, p, _, _ in frames],
                 format="extxyz")
    xyz = ExtXYZSource(tmp_path / "c.xyz")
    assert len(xyz) == 5
    z, pos, _, _ = xyz.conformer(3)
    np.testing.assert_array_equal(z, frames[3][0])
    np.testing.assert_allclose(pos, frames[3][1], atol=1e-6)


@pytest.mark.slow
def test_two_process_ddp_equals_one_process_on_the_combined_batch(tmp_path):
    common = [sys.executable, "-m", "geomfeat", "pretrain", str(EXAMPLE / "ala2.xtc"), "--top",
              str(EXAMPLE / "ala2.pdb"), "--select", "heavy", "--stop", "200", "--hidden", "16",
              "--layers", "2", "--rbf", "16", "--cutoff", "5", "--batch-size", "8", "--steps",
              "4", "--val-fraction", "0", "--accelerator", "cpu", "-q", "--name", "m"]
    one = subprocess.run([*common, "-o", str(tmp_path / "one")], capture_output=True, text=True)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([*common, "-o", str(tmp_path / "two"), "--devices", "2", "--strategy",
                          "ddp"], capture_output=True, text=True)
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = weights(tmp_path / "one/m.pth"), weights(tmp_path / "two/m.pth")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
    assert not torch.equal(a["representation_model.embedding.weight"],
                           DenoisingModel("visnet", {k: v for k, v in TINY.items()
                                                     if k != "architecture"})
                           .state_dict()["representation_model.embedding.weight"])


def test_an_upstream_checkpoint_continued_for_zero_steps_embeds_like_the_registered_model(
        tmp_path, weights_url):
    import mdtraj as md

    from geomfeat import GeomFeaturizer

    result = pretrain([source(200)], tmp_path / "zero",
                      PretrainConfig(init="visnet-denali", max_steps=0, val_fraction=0),
                      progress=False)
    card = json.loads(result.card.read_text())
    assert card["parent"]["name"] == "visnet-denali" and card["training"]["steps"] == 0
    assert card["training"]["head_loaded_from_init"] is True
    traj = md.load(str(EXAMPLE / "ala2.xtc"), top=str(EXAMPLE / "ala2.pdb"))[:16]
    np.testing.assert_array_equal(GeomFeaturizer(str(result.card)).transform(traj),
                                  GeomFeaturizer("visnet-denali").transform(traj))
    from geomfeat.download import fetch_weights

    upstream = weights(fetch_weights("visnet-denali", progress=False))
    assert_same_bits(upstream, weights(result.checkpoint))  # same keys, same tensors


@pytest.mark.parametrize("architecture", ["et", "tensornet"])
def test_every_architecture_trains(tmp_path, architecture):
    config = tiny(architecture=architecture, max_steps=3, val_fraction=0)
    result = pretrain([source(100)], tmp_path / architecture, config, progress=False)
    state = weights(result.checkpoint)
    prefix = "output_model_noise." if architecture != "visnet" else "vec_out."
    assert any(k.startswith(prefix) for k in state) and np.isfinite(result.train_loss)


def test_command_line_errors_are_one_line(tmp_path, capsys):
    from geomfeat.cli import main

    base = ["pretrain", "--top", str(EXAMPLE / "ala2.pdb"), "-o", str(tmp_path / "o"), "-q"]
    assert main([*base[:1], str(tmp_path / "missing.xtc"), *base[1:]]) == 1
    assert capsys.readouterr().err.strip() == (
        f"geomfeat: error: data file not found: {tmp_path / 'missing.xtc'}")
    assert main([*base[:1], str(EXAMPLE / "ala2.xtc"), *base[1:], "--resume",
                 str(tmp_path / "none.ckpt")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checkpoint to resume from not found" in err
    assert main([*base[:1], str(EXAMPLE / "ala2.xtc"), *base[1:], "--init", "nope"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown model 'nope'" in err


SDF_RECORDS = ["""methane
  hand-written

  2  1  0  0  0  0  0  0  0  0999 V2000
    0.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0
    1.0890    0.0000    0.0000 H   0  0  0  0  0  0  0  0  0  0  0  0
  1  2  1  0
M  END
$$$$
""", """water
  hand-written

  3  2  0  0  0  0  0  0  0  0999 V2000
    0.0000    0.0000    0.1173 O   0  0  0  0  0  0  0  0  0  0  0  0
    0.0000    0.7572   -0.4692 H   0  0  0  0  0  0  0  0  0  0  0  0
    0.0000   -0.7572   -0.4692 H   0  0  0  0  0  0  0  0  0  0  0  0
  1  2  1  0
  1  3  1  0
M  END
$$$$
"""]


def test_sdf_molecules_of_different_sizes_train_in_one_batch(tmp_path):
    pytest.importorskip("ase")
    from geomfeat.pretrain import SDFSource

    path = tmp_path / "mols.sdf"
    path.write_text("".join(SDF_RECORDS[i % 2] for i in range(12)))
    sdf = SDFSource(path)
    assert len(sdf) == 12
    z, pos, _, _ = sdf.conformer(1)
    np.testing.assert_array_equal(z, [8, 1, 1])
    np.testing.assert_allclose(pos[1], [0.0, 0.7572, -0.4692])
    result = pretrain([sdf], tmp_path / "sdf", tiny(max_steps=2, batch_size=4, val_fraction=0),
                      progress=False)
    assert result.steps == 2 and np.isfinite(result.train_loss)
    assert json.loads(result.card.read_text())["elements"] == [1, 6, 8]
