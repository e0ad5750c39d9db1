"""Specification of what ``geomfeat pretrain`` promises about its output folder.

A resumed run is the uninterrupted run bit for bit (Ctrl-C, SIGTERM or kill -9 at any point, in
any epoch); a finished run is left alone; one run at a time writes a folder; a full disk, a
missing Lightning and an interrupt each end with one line; Lightning's chatter is not shown.
Tiny encoders on 100 heavy-atom frames of the alanine-dipeptide example keep each run to about a
second.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import EXAMPLE
from test_pretrain import assert_same_bits, source, tiny, weights

from geomfeat.cli import main
from geomfeat.errors import OutputLockedError
from geomfeat.locks import hold, lock_path
from geomfeat.pretrain import pretrain
from geomfeat.pretrain.train import PretrainInterrupted

XTC, PDB = str(EXAMPLE / "ala2.xtc"), str(EXAMPLE / "ala2.pdb")
#: The command line of ``tiny(**RESUME_RUN)`` on ``source(100)``.
CLI = ["pretrain", XTC, "--top", PDB, "--select", "heavy", "--stop", "100", "--hidden", "16",
       "--layers", "2", "--rbf", "16", "--cutoff", "5", "--batch-size", "8", "--epochs", "50",
       "--threads", "1", "--name", "m"]


def command(*args) -> list[str]:
    return [sys.executable, "-m", "geomfeat", *CLI, *map(str, args)]


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


class _Interrupt(L.Callback):
    """Ctrl-C before the step ``at`` (the step count, 0-based)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_start(self, trainer, *args) -> None:
        if trainer.global_step == self.at:
            raise KeyboardInterrupt


# ------------------------------------------------------------------------ exact resume
class _FinalState(L.Callback):
    """Keeps the weights and normaliser buffers at the end of training (not just the best)."""

    def on_train_end(self, trainer, module) -> None:
        self.state = {k: v.clone() for k, v in module.model.state_dict().items()}


#: 100 frames: 90 training conformers, 11 batches of 8 an epoch; 40 steps end inside epoch 3.
RESUME_RUN = {"max_steps": 40, "checkpoint_every": 1, "log_every": 1}


def _card(path: Path) -> dict:
    card = json.loads(path.read_text())
    card["training"].pop("wall_seconds_last_run")
    return card


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The uninterrupted runs, one per validation schedule (shared by the resume tests)."""
    runs = {}

    def run(val_every):
        if val_every not in runs:
            out = tmp_path_factory.mktemp("straight")
            final = _FinalState()
            pretrain([source(100)], out, tiny(val_every=val_every, **RESUME_RUN), name="m",
                     progress=False, callbacks=[final])
            runs[val_every] = (out, final.state)
        return runs[val_every]

    return run


def assert_same_run(a: Path, b: Path) -> None:
    """Two output folders hold the same run: weights, normaliser, log and card, bit for bit."""
    assert_same_bits(weights(a / "m.pth"), weights(b / "m.pth"))  # pos_normalizer.* included
    assert (a / "metrics.csv").read_text() == (b / "metrics.csv").read_text()
    assert _card(a / "m.json") == _card(b / "m.json")


@pytest.mark.parametrize(("val_every", "interrupt", "saved"), [
    (None, 17, 17),  # mid-epoch 1
    (None, 22, 21),  # the last batch of epoch 1 is next: its validation and end not yet run
    (None, 23, 23),  # right after the validation at the end of epoch 1
    (5, 16, 16),     # right after a mid-epoch validation (step 15), in epoch 1
    (5, 35, 34),     # a validation is due after step 35 (epoch 3): the checkpoint is before it
], ids=["mid-epoch", "before-epoch-end", "after-epoch-validation", "after-mid-epoch-validation",
        "before-a-validation"])
def test_a_resumed_run_is_the_uninterrupted_run_bit_for_bit(tmp_path, uninterrupted, val_every,
                                                           interrupt, saved):
    """Before: an interrupt after epoch 0 changed the weights (every epoch used epoch 0's order
    and noise, a resumed one its own), skipped validations, changed the epoch means of the log
    and, after a kill, lost its rows."""
    straight, final = uninterrupted(val_every)
    config = tiny(val_every=val_every, **RESUME_RUN)
    with pytest.raises(PretrainInterrupted, match=f"interrupted at step {interrupt}; .*last"
                                                  rf"\.ckpt holds step {saved}"):
        pretrain([source(100)], tmp_path, config, name="m", progress=False,
                 callbacks=[_Interrupt(interrupt)])
    assert torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=False)[
        "global_step"] == saved
    resumed = _FinalState()
    result = pretrain([source(100)], tmp_path, config, name="m", progress=False, resume="auto",
                      callbacks=[resumed])
    assert result.steps == 40 and result.epochs == json.loads(
        (straight / "m.json").read_text())["training"]["epochs"]
    assert_same_bits(final, resumed.state)  # the last weights too, not only the best
    assert_same_run(straight, tmp_path)


def test_a_run_interrupted_twice_is_still_the_uninterrupted_run(tmp_path, uninterrupted):
    """Interrupted at step 13, resumed, interrupted at step 22 in the same epoch (its last
    batch is next), resumed: a resumed run counts its batches and checkpoints as an
    uninterrupted one."""
    straight, _ = uninterrupted(5)
    config = tiny(val_every=5, **RESUME_RUN)
    for at, resume in ((13, None), (22, "auto")):
        with pytest.raises(PretrainInterrupted, match=f"interrupted at step {at};"):
            pretrain([source(100)], tmp_path, config, name="m", progress=False, resume=resume,
                     callbacks=[_Interrupt(at)])
    assert torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=False)[
        "global_step"] == 21
    pretrain([source(100)], tmp_path, config, name="m", progress=False, resume="auto")
    assert_same_run(straight, tmp_path)


def test_epochs_draw_new_batches_and_noise(tmp_path):
    """Before: Lightning never told the batch sampler the epoch: every epoch repeated the
    order and the noise of epoch 0."""
    seen = []

    class Record(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if batch_idx == 0:
                seen.append(batch.noise.clone())

    pretrain([source(100)], tmp_path, tiny(max_steps=23, val_fraction=0.1), progress=False,
             callbacks=[Record()])
    assert len(seen) == 3 and not torch.equal(seen[0], seen[1])


@pytest.mark.slow  # a subprocess (~5 s of imports) and a resume; fast variants above
def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_run(tmp_path, uninterrupted):
    """kill -9 inside epoch 2: nothing runs at exit, the checkpoint and the log it holds are
    all there is (before: the log lost every row not yet flushed)."""
    straight, _ = uninterrupted(None)
    config = tiny(**RESUME_RUN)
    script = f"""
import json, os, signal
import lightning as L
from geomfeat.pretrain import PretrainConfig, TrajectorySource, pretrain

class Kill(L.Callback):
    def on_train_batch_start(self, trainer, *args):
        if trainer.global_step == 27:
            os.kill(os.getpid(), signal.SIGKILL)

pretrain([TrajectorySource({XTC!r}, {PDB!r}, select="heavy", stop=100)], {str(tmp_path)!r},
         PretrainConfig(**json.loads({json.dumps(asdict(config))!r})), name="m",
         progress=False, callbacks=[Kill()])
"""
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=False)[
        "global_step"] == 27
    pretrain([source(100)], tmp_path, config, name="m", progress=False, resume="auto")
    assert_same_run(straight, tmp_path)


def test_resuming_a_finished_run_changes_nothing(tmp_path, uninterrupted, capsys):
    """Before: it rewrote the card (best validation loss and epochs changed, weights not)."""
    straight, _ = uninterrupted(None)
    out = tmp_path / "copy"
    shutil.copytree(straight, out)
    files = sorted(p for p in out.rglob("*") if p.is_file())
    before = [(p, p.read_bytes(), p.stat().st_mtime_ns) for p in files]
    result = pretrain([source(100)], out, tiny(**RESUME_RUN), name="m", progress=False,
                      resume="auto")
    assert result.already_complete and result.steps == 40
    assert main([*CLI, "-o", str(out), "--steps", "40", "--checkpoint-every", "1",
                 "--log-every", "1", "-q", "--resume"]) == 0
    assert one_line(capsys.readouterr().err) == (
        f"{out / 'm.json'}: already complete (40 steps, {result.epochs} epochs, train loss "
        f"{result.train_loss:.4g}, best validation loss {result.val_loss:.4g}); nothing to do "
        "(more --steps or --epochs continue it)")
    assert sorted(p for p in out.rglob("*") if p.is_file()) == files
    assert [(p, p.read_bytes(), p.stat().st_mtime_ns) for p in files] == before


def test_resume_in_a_folder_without_a_checkpoint_says_it_starts_a_new_run(tmp_path):
    """Before: it silently trained from scratch."""
    with pytest.warns(UserWarning, match=r"new holds no checkpoint to resume "
                                         r"\(checkpoints/last\.ckpt\): starting a new run"):
        result = pretrain([source(64)], tmp_path / "new", tiny(max_steps=2), progress=False,
                          resume="auto")
    assert result.steps == 2 and not result.already_complete


# ---------------------------------------------------------------------------- one writer
def test_a_second_run_on_a_folder_being_written_fails_naming_the_holder_or_waits(tmp_path,
                                                                                 capsys):
    """Before: two runs on one folder both exited 0, the card of one over the other's weights."""
    out = tmp_path.resolve() / "run"
    with hold([out]):  # this test process is the first run
        assert main([*CLI, "-o", str(out), "--steps", "2", "-q"]) == 1
        line = one_line(capsys.readouterr().err)
        assert line.startswith(f"geomfeat: error: {out} is being written by another geomfeat "
                               f"run (host ")
        assert f"pid {os.getpid()}" in line and "--wait" in line
        assert not out.exists()
        with pytest.raises(OutputLockedError, match=r"is being written .*wait=True"):
            pretrain([source(64)], out, tiny(max_steps=2), progress=False)
        waiting = subprocess.Popen(command("-o", out, "--steps", "2", "-q", "--wait"),
                                   stderr=subprocess.PIPE, text=True)
        time.sleep(3)
        assert waiting.poll() is None, waiting.stderr.read()
        assert not out.exists()
    assert waiting.wait(timeout=300) == 0, waiting.stderr.read()
    assert (out / "m.json").is_file() and not lock_path(out).exists()


# ------------------------------------------------------------------- one-line endings
@pytest.mark.parametrize(("signum", "status", "start"), [
    (signal.SIGINT, 130, "geomfeat: interrupted"),
    pytest.param(signal.SIGTERM, 143, "geomfeat: terminated", marks=pytest.mark.slow)])
def test_ctrl_c_and_sigterm_end_with_embeds_exit_status_keeping_the_checkpoint(
        tmp_path, signum, status, start):
    """Before: Ctrl-C ended with exit status 1."""
    out = tmp_path / "run"
    proc = subprocess.Popen(command("-o", out, "--steps", "100000", "--checkpoint-every", "2",
                                    "-q"), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "checkpoints" / "last.ckpt").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.1)
    proc.send_signal(signum)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == status, err
    line = one_line(err)
    assert line.startswith(start) and "training interrupted at step" in line
    assert f"{out / 'checkpoints' / 'last.ckpt'} holds step" in line and "--resume" in line


def test_ctrl_c_in_the_closing_validation_of_a_short_run_is_an_interrupt(tmp_path):
    """Before: Lightning's ``sys.exit(1)`` escaped (exit status 1, no message)."""
    class StopInValidation(L.Callback):
        def on_validation_start(self, trainer, module) -> None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # 2 steps of an 11-batch epoch: validated after fit
        pretrain([source(100)], tmp_path, tiny(max_steps=2), progress=False,
                 callbacks=[StopInValidation()])


def test_pretrain_without_lightning_says_how_to_install_it(tmp_path):
    """Before: a ModuleNotFoundError traceback after a plain ``pip install .``."""
    code = ("import sys; sys.modules['lightning'] = None; from geomfeat.cli import main; "
            f"sys.exit(main({[*CLI, '-o', str(tmp_path / 'run'), '-q']!r}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1
    assert one_line(result.stderr) == ("geomfeat: error: geomfeat pretrain needs PyTorch "
                                       "Lightning: pip install 'geomfeat[pretrain]'")


def test_lightning_banners_tips_and_deprecations_are_not_shown(tmp_path, capfd):
    """Before: "GPU available: ...", a litlogger advert and a torch deprecation warning
    prefixed ``geomfeat: warning:``, without ``-q`` (the default)."""
    assert main([*CLI, "-o", str(tmp_path / "run"), "--steps", "2"]) == 0
    err = capfd.readouterr().err
    for noise in ("GPU available", "TPU available", "Tip:", "LeafSpec", "deprecated",
                  "geomfeat: warning"):
        assert noise not in err
    assert f"{tmp_path / 'run' / 'm.json'}: 2 steps" in err


@pytest.fixture()
def small_tmpfs(mount_tmpfs):
    """A 100 KiB tmpfs (needs root; skipped where mounting is not allowed)."""
    return mount_tmpfs(100)


def test_a_full_disk_is_one_line_naming_the_file_and_leaves_no_hidden_files(small_tmpfs,
                                                                          capsys):
    """Before: a completely full disk gave ``OSError: [Errno 28]`` without a path and left a
    0-byte lock file; a nearly full one named a temporary file of fsspec's."""
    out = small_tmpfs / "run"
    assert main([*CLI, "-o", str(out), "--steps", "30", "--checkpoint-every", "4", "-q"]) == 1
    assert one_line(capsys.readouterr().err).startswith(
        f"geomfeat: error: could not write {out / 'checkpoints' / 'last.ckpt'}: No space left "
        "on device (")
    assert not [p for p in small_tmpfs.rglob(".*")]  # no lock, no .partial files

    shutil.rmtree(out)
    with open(small_tmpfs / "fill", "wb", buffering=0) as handle, pytest.raises(OSError):
        while True:
            handle.write(b"\0" * 4096)
    assert main([*CLI, "-o", str(out), "--steps", "30", "-q"]) == 1
    assert one_line(capsys.readouterr().err) == (
        f"geomfeat: error: could not write the lock file {small_tmpfs / '.run.lock'}: No space "
        "left on device (0 bytes free on its file system)")
    assert [p.name for p in small_tmpfs.iterdir()] == ["fill"]
