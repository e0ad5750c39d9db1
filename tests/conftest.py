"""Shared fixtures: the ``../shared`` material, a local weights server, oracle outputs.

Checkpoints reach the tests through geomfeat's real download path: ``../shared/weights`` is
served over HTTP on 127.0.0.1 and ``GEOMFEAT_WEIGHTS_URL`` points at it, with a fresh
``GEOMFEAT_CACHE`` for the session. Outside CI, tests that need ``../shared`` skip when it is
missing (also those that reach the weights without asking for ``weights_url``: a failed fetch
while ``../shared/weights`` is absent is a skip); in CI (``CI=true``) they fail instead.

Tests marked ``slow`` (protein-sized cases, Dask clusters, the suite checking itself) are
deselected in a default local run and run in CI or with ``pytest --runslow``.
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
import warnings
from pathlib import Path

# as `import geomfeat` does: OpenMP threads sleep, not spin, while they wait (before torch loads)
os.environ["OMP_WAIT_POLICY"] = os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GEOMFEAT_SHARED", ROOT.parent / "shared"))
EXAMPLE = ROOT / "examples" / "ala2"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_addoption(parser) -> None:
    parser.addoption("--runslow", action="store_true",
                     help="also run tests marked slow (always run in CI)")


def pytest_collection_modifyitems(config, items) -> None:
    """Deselect ``slow`` tests unless in CI or ``--runslow`` (or ``-m`` picks markers)."""
    if IN_CI or config.getoption("--runslow") or config.getoption("-m") not in ("", "not gpu"):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Outside CI, a test that failed only because ``../shared/weights`` is absent skips."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI or (SHARED / "weights").is_dir() or call.excinfo is None or not report.failed:
        return
    from geomfeat.errors import WeightsError

    exc: BaseException | None = call.excinfo.value
    while exc is not None and not isinstance(exc, WeightsError):
        exc = exc.__cause__ or exc.__context__
    if exc is not None:
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0,
                           f"Skipped: {SHARED / 'weights'} is missing ({exc})")


def need(path: Path) -> Path:
    """Return ``path`` if it exists; otherwise skip (fail in CI)."""
    if path.exists():
        return path
    message = f"{path} is missing (set GEOMFEAT_SHARED to the shared folder)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def serve_folder(folder: Path):
    """Start an HTTP server on 127.0.0.1 serving ``folder``; returns (server, base_url)."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="session", autouse=True)
def _weights_from_local_server(tmp_path_factory):
    """Route every download of the session to a local server and a fresh cache."""
    folder = SHARED / "weights"
    server = None
    if folder.is_dir():
        server, url = serve_folder(folder)
    else:
        url = "http://127.0.0.1:9/no-weights"  # discard port: nothing leaves this machine
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GEOMFEAT_WEIGHTS_URL", url)
        mp.setenv("GEOMFEAT_CACHE", str(tmp_path_factory.mktemp("weights-cache")))
        yield url
    if server is not None:
        server.shutdown()


@pytest.fixture(scope="session")
def weights_url(_weights_from_local_server) -> str:
    """Base URL of the local server holding the real checkpoints."""
    need(SHARED / "weights")
    return _weights_from_local_server


@functools.cache
def _encoder(model: str, dtype: torch.dtype):
    from geomfeat.encoders import load_encoder

    return load_encoder(model, dtype=dtype, progress=False)


@pytest.fixture(scope="session")
def encoder(weights_url):
    """``encoder(model, dtype)``: a loaded encoder, cached for the session."""
    return _encoder


@pytest.fixture(scope="session")
def oracle():
    """``oracle(model)``: the reference outputs of a registered encoder (an npz)."""
    from geomfeat.registry import get_model_card

    @functools.cache
    def load(model: str):
        stem = Path(get_model_card(model).file).stem
        with np.load(need(SHARED / "oracle" / f"{stem}.npz")) as data:
            return dict(data)

    return load


@pytest.fixture(scope="session")
def example_files() -> tuple[Path, Path]:
    """The bundled example: (trajectory, topology)."""
    return EXAMPLE / "ala2.xtc", EXAMPLE / "ala2.pdb"


def quiet_universe(*files):
    """An MDAnalysis Universe of ``files`` without its warnings (missing masses, offsets)."""
    import MDAnalysis as mda

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mda.Universe(*map(str, files))


@pytest.fixture()
def universe(example_files):
    """The bundled example as a fresh MDAnalysis Universe (Å)."""
    xtc, pdb = example_files
    return quiet_universe(pdb, xtc)


@pytest.fixture()
def one_torch_thread():
    """One torch thread for the test: tiny models are fastest so, and two threads spin on a
    busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def mount_tmpfs(tmp_path):
    """``mount_tmpfs(kib)``: a new tmpfs of ``kib`` KiB under ``tmp_path``, unmounted after the
    test (needs root; skipped where mounting is not allowed)."""
    import subprocess

    mounts: list[Path] = []

    def mount(kib: int) -> Path:
        folder = tmp_path / f"tmpfs{len(mounts)}"
        folder.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs",
                                 str(folder)], capture_output=True)
        if result.returncode != 0:
            pytest.skip("cannot mount a tmpfs here (needs root)")
        mounts.append(folder)
        return folder

    yield mount
    for folder in mounts:
        subprocess.run(["umount", str(folder)], check=False)


def random_rotation(seed: int = 0) -> np.ndarray:
    """A proper rotation matrix (det +1) drawn uniformly."""
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q
