"""The code base is ruff clean (rules in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess

from conftest import ROOT


def test_ruff_clean():
    ruff = shutil.which("ruff")
    assert ruff, "ruff is a test dependency: pip install '.[test]'"
    result = subprocess.run([ruff, "check", "--no-cache", str(ROOT)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr
