"""The test suite itself: lean by default, complete in CI, skips (not fails) without ../shared."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "GEOMFEAT_SHARED")}
    return {**env, **extra}


@pytest.mark.slow
def test_without_shared_folder_tests_skip_instead_of_failing(tmp_path):
    """Before: these two failed without ../shared (one fetched weights without asking)."""
    empty = tmp_path / "no-shared"
    empty.mkdir()
    tests = ["tests/test_cluster.py::test_command_line_failure_is_one_line_even_from_workers",
             "tests/test_periodic.py::test_box_smaller_than_twice_the_cutoff_names_the_frame"]
    result = pytest_run("-q", "--runslow", *tests,
                        env=clean_env(GEOMFEAT_SHARED=str(empty)))
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 skipped" in result.stdout
    forgetful = tmp_path / "test_forgetful.py"  # reaches the weights without weights_url
    forgetful.write_text("from geomfeat import GeomFeaturizer\n"
                         "def test_x(example_files):\n"
                         "    import mdtraj as md\n"
                         "    GeomFeaturizer().transform(md.load(example_files[1]))\n")
    result = pytest_run("-q", "-p", "conftest", str(forgetful),
                        env=clean_env(GEOMFEAT_SHARED=str(empty),
                                      PYTHONPATH=str(ROOT / "tests")))
    assert result.returncode == 0 and "1 skipped" in result.stdout, result.stdout[-3000:]


@pytest.mark.slow
def test_slow_tests_run_in_ci_and_on_request_only():
    def collected(**env: str) -> str:
        args = ["--collect-only", "-q", "tests/test_cluster.py", "tests/test_encoders.py"]
        result = pytest_run(*args, env=clean_env(**env))
        return result.stdout

    default = collected()
    assert "test_cluster.py" not in default and "on_protein" not in default
    assert "deselected" in default and "on_alanine_dipeptide" in default
    everything = collected(CI="true")  # what .ci/run runs; --runslow does the same locally
    assert "test_cluster.py::" in everything and "on_protein" in everything


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = ci.strip().splitlines()[-1]
    assert command in readme
    assert "pytest --runslow" in readme and "CI=true" in readme
