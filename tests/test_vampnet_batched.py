"""Batched VAMPNet training (geomfeat.evaluate.batched) and the worker pool of ``compare``.

The batched model must train the very networks that separate training trains: the same
initial weights, mini-batches, validation scores, schedules and early stopping, up to float32
round-off (batched matrix products sum in another order). Compared here by the networks'
outputs (weights that get no gradient, e.g. a bias a LayerNorm removes, drift under Adam by
round-off only and change nothing), curves, epochs and chosen restarts.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import EXAMPLE
from test_evaluate import two_state

from geomfeat.cli import main
from geomfeat.evaluate import VAMPNetRecipe, make_split
from geomfeat.evaluate.batched import vamp2_batched
from geomfeat.evaluate.splits import pieces_of
from geomfeat.evaluate.vampnet import train_vampnets
from geomfeat.evaluate.workers import MIN_STEPS_FOR_WORKERS, auto_workers

TINY = VAMPNetRecipe(budget=300, batch_size=64, steps_per_epoch=4, max_epochs=6, patience=2,
                     lr_patience=1, restarts=2)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tasks_of(data: list[np.ndarray], seeds=(0, 1), lags=(1, 3)) -> list[tuple]:
    """(train, validation, lag, seed) for every seed's split and lag."""
    out = []
    for seed in seeds:
        sp = make_split([len(x) for x in data], n_blocks=5, seed=seed)
        out += [(pieces_of(data, sp.train), pieces_of(data, sp.validation), lag, seed)
                for lag in lags]
    return out


def assert_same_networks(a: list[dict], b: list[dict], frames: np.ndarray) -> None:
    x = torch.from_numpy(frames)
    for ta, tb in zip(a, b, strict=True):
        assert ta["restart"] == tb["restart"]
        assert ta["val_vamp2"] == pytest.approx(tb["val_vamp2"], abs=1e-5)
        for ra, rb in zip(ta["runs"], tb["runs"], strict=True):
            assert (ra["epochs"], ra["best_epoch"]) == (rb["epochs"], rb["best_epoch"])
            assert ra["final_lr"] == rb["final_lr"]
            np.testing.assert_allclose(ra["val_curve"], rb["val_curve"], atol=2e-5)
            np.testing.assert_allclose(ra["train_curve"], rb["train_curve"], atol=2e-5)
        with torch.no_grad():
            np.testing.assert_allclose(ta["lobe"](x).numpy(), tb["lobe"](x).numpy(), atol=1e-5)


@pytest.mark.parametrize("token_lobe", ["mlp", "mixer"])
def test_batched_training_trains_the_networks_of_separate_training(token_lobe):
    """All seeds × lags × restarts as one model = each trained alone (to float32 round-off)."""
    recipe = VAMPNetRecipe(**{**TINY.as_dict(), "token_lobe": token_lobe,
                              "budget": 300 if token_lobe == "mlp" else 1500})
    data = two_state(dim=6 if token_lobe == "mlp" else 12)
    if token_lobe != "mlp":
        data = [x.reshape(len(x), 3, 4) for x in data]
    tasks = tasks_of(data)
    separate = train_vampnets(tasks, recipe, batched=False)
    batched = train_vampnets(tasks, recipe, batched=True)
    assert all(r["batched"] == 8 for t in batched for r in t["runs"])
    # the runs differ between networks (else the comparison would prove little)
    assert len({tuple(r["val_curve"]) for t in separate for r in t["runs"]}) == 8
    assert_same_networks(separate, batched, np.concatenate(data))


def test_a_network_does_not_depend_on_its_batch_companions():
    """Seed 0's networks trained alone and next to seed 1's are the same, and a rerun is
    bit-identical."""
    data = two_state()
    alone = train_vampnets(tasks_of(data, seeds=(0,)), TINY)
    again = train_vampnets(tasks_of(data, seeds=(0,)), TINY)
    together = train_vampnets(tasks_of(data, seeds=(0, 1)), TINY)[:2]
    assert_same_networks(alone, together, np.concatenate(data))
    for a, b in zip(alone, again, strict=True):
        for k, v in a["lobe"].state_dict().items():
            assert torch.equal(v, b["lobe"].state_dict()[k])
        assert [r["val_curve"] for r in a["runs"]] == [r["val_curve"] for r in b["runs"]]


def test_batched_vamp2_is_deeptimes_score_and_gradient_per_network():
    from deeptime.decomposition.deep import vamp_score

    gen = torch.Generator().manual_seed(0)
    x = torch.softmax(torch.randn(3, 50, 4, generator=gen), -1).requires_grad_()
    y = torch.softmax(x.detach() + 0.3 * torch.randn(3, 50, 4, generator=gen), -1)
    for mode in ("regularize", "clamp"):
        batched = vamp2_batched(x, y, epsilon=1e-6, mode=mode)
        (grad,) = torch.autograd.grad(batched.sum(), x)
        for k in range(3):
            xk = x.detach()[k].clone().requires_grad_()
            ref = vamp_score(xk, y[k], method="VAMP2", epsilon=1e-6, mode=mode)
            (ref_grad,) = torch.autograd.grad(ref, xk)
            assert float(batched[k].detach()) == pytest.approx(float(ref), rel=1e-6)
            np.testing.assert_allclose(grad[k].numpy(), ref_grad.numpy(), rtol=1e-4,
                                       atol=1e-6)
    with pytest.raises(ValueError, match="regularize or clamp"):
        vamp2_batched(x, y, mode="trunc")


def test_trunc_score_mode_falls_back_to_separate_training():
    """deeptime's ``trunc`` mode drops eigenvalues per network: not batchable, still works."""
    recipe = VAMPNetRecipe(**{**TINY.as_dict(), "score_mode": "trunc", "max_epochs": 2})
    out = train_vampnets(tasks_of(two_state(), seeds=(0,), lags=(1,)), recipe)
    assert "batched" not in out[0]["runs"][0] and len(out[0]["runs"]) == 2


def test_workers_start_only_for_comparisons_that_pay_their_start(monkeypatch):
    from geomfeat.evaluate import workers

    monkeypatch.setattr(workers, "available_cpus", lambda: 4)
    big = VAMPNetRecipe()
    n_big = -(-MIN_STEPS_FOR_WORKERS // (big.max_epochs * big.steps_per_epoch))
    assert auto_workers(8, n_big, big) == 4
    assert auto_workers(3, n_big, big) == 3  # at most one per unit
    assert auto_workers(8, n_big - 1, big) == 1
    assert auto_workers(8, 48, TINY) == 1
    assert auto_workers(8, 48, None) == 1  # linear only
    assert auto_workers(8, 48, big, device="cuda") == 1


@pytest.mark.slow
def test_compare_scores_the_same_in_worker_processes_as_in_this_process(tmp_path, capsys):
    """``--workers 2`` (units of one feature set and seed in spawned processes) reports the
    scores of ``--workers 1`` (one batched model per feature set in this process)."""
    reports = []
    for workers in ("1", "2"):
        status = main(["compare", str(EXAMPLE / "ala2.pdb"), str(EXAMPLE / "ala2.xtc"),
                       "--stride", "10", "--lag", "10ps", "-o", str(tmp_path / workers),
                       "--features", "torsions", "--seeds", "0", "1", "--n-blocks", "6",
                       "--budget", "300", "--steps-per-epoch", "3", "--max-epochs", "2",
                       "--batch-size", "64", "--workers", workers, "-q"])
        assert status == 0, capsys.readouterr().err
        reports.append(json.loads((tmp_path / workers / "compare.json").read_text()))
    assert [r["settings"]["workers"] for r in reports] == [1, 2]
    for fs, by_lag in reports[0]["scores"].items():
        for lag, entry in by_lag.items():
            other = reports[1]["scores"][fs][lag]
            assert entry["linear"]["per_seed"] == other["linear"]["per_seed"]
            for a, b in zip(entry["vampnet"]["per_seed"], other["vampnet"]["per_seed"],
                            strict=True):
                assert a["vamp2"] == pytest.approx(b["vamp2"], abs=1e-5)
                assert [r["epochs"] for r in a["runs"]] == [r["epochs"] for r in b["runs"]]
