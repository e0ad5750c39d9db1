"""embed_many on a Dask LocalCluster: serial bits, resumable, survives a dead worker.

The cluster has 2 worker processes on 127.0.0.1. Every run here uses one PyTorch thread per
task, serial and distributed alike: float32 sums depend on the thread count, and equal
settings must give equal bits.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time

import dask
import mdtraj as md
import numpy as np
import pytest
from distributed import Client

from geomfeat import GeomFeaturizer, fetch_weights
from geomfeat.cli import main
from geomfeat.cluster import (
    MANIFEST_NAME,
    WORKER_THREAD_VARIABLES,
    embed_many,
    local_cluster,
    worker_device,
)
from geomfeat.errors import GeomfeatError

#: Dask clusters take a minute to start and run: in CI and with --runslow only.
pytestmark = pytest.mark.slow
#: This process's thread settings before any cluster started.
THREAD_SETTINGS = {name: os.environ.get(name) for name in WORKER_THREAD_VARIABLES}

LENGTHS = {"r0": 500, "r1": 400, "r2": 300, "r3": 200}


@pytest.fixture(scope="module")
def runs(example_files, tmp_path_factory):
    """Four trajectories cut from the example (500, 400, 300 and 200 frames) and the topology."""
    xtc, pdb = example_files
    folder = tmp_path_factory.mktemp("runs")
    traj = md.load(xtc, top=pdb)
    paths, start = [], 0
    for name, n in LENGTHS.items():
        path = folder / f"{name}.xtc"
        traj[start : start + n].save_xtc(str(path))
        paths.append(path)
        start += n
    return paths, pdb


@pytest.fixture(scope="module")
def serial(runs, weights_url, tmp_path_factory):
    """The serial outputs (one thread) every distributed run must reproduce."""
    paths, pdb = runs
    out = tmp_path_factory.mktemp("serial") / "emb"
    manifest = embed_many("visnet-denali", paths, pdb, out, threads=1, progress=False)
    assert manifest.count("written") == 4
    return out


@pytest.fixture(scope="module")
def client(weights_url):
    with local_cluster(2) as cluster, Client(cluster) as client:
        yield client


def outputs(folder):
    return {p.stem: np.load(p) for p in sorted(folder.glob("*.npy"))}


def assert_same_outputs(folder, reference):
    got, expected = outputs(folder), outputs(reference)
    assert got.keys() == expected.keys() == LENGTHS.keys()
    for name, array in expected.items():
        assert got[name].dtype == array.dtype == np.float32
        assert got[name].shape == array.shape == (LENGTHS[name], 64)
        np.testing.assert_array_equal(got[name], array)
        sidecar = json.loads((folder / f"{name}.json").read_text())
        expected_sidecar = json.loads((reference / f"{name}.json").read_text())
        for entry in (sidecar, expected_sidecar):
            entry.pop("created")
        assert sidecar == expected_sidecar
    assert not list(folder.glob(".*partial"))


def test_cluster_outputs_equal_serial_bit_for_bit(runs, serial, client, tmp_path):
    paths, pdb = runs
    out = tmp_path / "emb"
    manifest = embed_many("visnet-denali", paths, pdb, out, client=client, threads=1,
                          progress=False)
    assert_same_outputs(out, serial)
    assert [e["status"] for e in manifest.entries] == ["written"] * 4
    assert manifest.run["scheduler"] == client.scheduler.address
    loads = manifest.run["encoder_loads"]
    assert set(loads.values()) <= {0, 1}  # at most once per worker process
    assert json.loads((out / MANIFEST_NAME).read_text())["outputs"] == manifest.entries


def test_a_local_cluster_leaves_this_process_thread_settings_alone(client):
    """Before: the nannies wrote OMP_NUM_THREADS=1 (and MKL's, OpenBLAS's) into this process's
    environment for good, and geomfeat then took it for the user's choice of threads."""
    assert {name: os.environ.get(name) for name in WORKER_THREAD_VARIABLES} == THREAD_SETTINGS
    seen = client.run(lambda: {n: os.environ.get(n) for n in WORKER_THREAD_VARIABLES})
    assert all(v == dict.fromkeys(WORKER_THREAD_VARIABLES, "1") for v in seen.values())


def test_frame_ranges_give_the_bits_of_one_pass(runs, client, tmp_path):
    paths, pdb = runs
    featurizer = GeomFeaturizer(batch_size=32)
    one_pass = embed_many(featurizer, paths[:2], pdb, tmp_path / "one", threads=1,
                          progress=False)
    split = embed_many(featurizer, paths[:2], pdb, tmp_path / "split", client=client,
                       threads=1, frames_per_task=100, progress=False)
    assert [e["parts"] for e in one_pass.entries] == [1, 1]
    assert [e["parts"] for e in split.entries] == [6, 5]  # 96 frames (3 batches) per task
    for name in ("r0", "r1"):
        np.testing.assert_array_equal(np.load(tmp_path / "split" / f"{name}.npy"),
                                      np.load(tmp_path / "one" / f"{name}.npy"))


def test_second_run_does_no_work(runs, serial, client, tmp_path):
    paths, pdb = runs
    out = tmp_path / "emb"
    shutil.copytree(serial, out)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("r*")}
    manifest = embed_many("visnet-denali", paths, pdb, out, client=client, threads=1,
                          progress=False)
    assert [e["status"] for e in manifest.entries] == ["complete"] * 4
    assert manifest.run["encoder_loads"] == {}  # no part was run anywhere
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("r*")} == stamps


def test_a_killed_worker_costs_only_time(runs, serial, client, tmp_path):
    paths, pdb = runs
    out = tmp_path / "emb"
    result: dict = {}

    def run() -> None:
        result["manifest"] = embed_many("visnet-denali", paths, pdb, out, client=client,
                                        threads=1, progress=False)

    thread = threading.Thread(target=run)
    thread.start()
    victim = None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline:
        busy = [address for address, keys in client.processing().items()
                if any(str(key).startswith("geomfeat-part") for key in keys)]
        if busy and list(out.glob(".*partial")):
            time.sleep(0.5)  # let it write some rows
            victim = busy[0]
        time.sleep(0.05)
    assert victim is not None, "no part task started within a minute"
    pid = client.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=300)
    assert not thread.is_alive()
    assert [e["status"] for e in result["manifest"].entries] == ["written"] * 4
    assert_same_outputs(out, serial)
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it for the next test


def test_bad_trajectory_fails_alone(runs, client, tmp_path, example_files):
    paths, pdb = runs
    bad = tmp_path / "bad.xtc"
    md.load(example_files[0], top=pdb)[:10].atom_slice(range(5)).save_xtc(str(bad))
    out = tmp_path / "emb"
    with pytest.raises(GeomfeatError, match=r"1 of 3 trajectories failed .*bad.xtc"):
        embed_many("visnet-denali", [paths[3], bad, paths[2]], pdb, out, client=client,
                   threads=1, progress=False)
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert [e["status"] for e in manifest["outputs"]] == ["written", "failed", "written"]
    assert "number of atoms" in manifest["outputs"][1]["error"]
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME, "r2.json", "r2.npy",
                                                     "r3.json", "r3.npy"]


def test_command_line_workers_equal_serial(runs, serial, tmp_path, capsys):
    paths, pdb = runs
    out = tmp_path / "emb"
    args = ["embed", *map(str, paths), "--top", str(pdb), "-o", str(out), "--threads", "1"]
    assert main([*args, "--workers", "2"]) == 0
    assert "4 written, 0 already complete" in capsys.readouterr().err
    assert_same_outputs(out, serial)
    assert main([*args, "--workers", "1", "--scheduler", "tcp://127.0.0.1:1"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "geomfeat: error: give --scheduler or --workers, not both"]


def test_command_line_failure_is_one_line_even_from_workers(runs, tmp_path, example_files,
                                                            capfd, weights_url):
    paths, pdb = runs
    fetch_weights("visnet-denali", progress=False)  # no first-download message on stderr
    bad = tmp_path / "bad.xtc"
    md.load(example_files[0], top=pdb)[:10].atom_slice(range(5)).save_xtc(str(bad))
    out = tmp_path / "emb"
    status = main(["embed", str(paths[3]), str(bad), "--top", str(pdb), "-o", str(out),
                   "--workers", "2", "-q"])
    assert status == 1
    err = capfd.readouterr().err.strip().splitlines()  # fd 2: worker processes included
    assert len(err) == 1, err
    assert err[0].startswith("geomfeat: error: 1 of 2 trajectories failed") and "bad.xtc" in err[0]
    assert (out / "r3.npy").is_file() and not (out / "bad.npy").exists()


def test_unreachable_scheduler_is_one_line(runs, tmp_path, capsys):
    paths, pdb = runs
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        status = main(["embed", *map(str, paths), "--top", str(pdb), "-o", str(tmp_path / "e"),
                       "--scheduler", "tcp://127.0.0.1:9", "-q"])
    assert status == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("geomfeat: error: ")


@pytest.mark.parametrize(("device", "name", "gpus", "expected"), [
    (None, 3, 0, None),
    ("cuda", 3, 1, "cuda"),
    ("cuda", 3, 2, "cuda:1"),
    (None, 4, 4, "cuda:0"),
    ("cuda:1", 0, 4, "cuda:1"),
    ("cpu", 1, 4, "cpu"),
])
def test_each_worker_picks_its_own_gpu(device, name, gpus, expected):
    assert worker_device(device, name, gpus) == expected
