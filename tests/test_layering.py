"""The package's layering and module sizes (issue 21).

The layers and the no-cycle rule are import-linter contracts in ``pyproject.toml``
(``[tool.importlinter]``): one embedding job runs down cli → cluster → job → featurizer →
encoders/trajectory → output primitives → low-level modules, and no two modules of a package
import each other, directly or around a loop.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

#: A module longer than this must say why in its docstring, on a line starting "Size:".
MAX_LINES = 450


def test_imports_keep_the_layers_and_make_no_cycles():
    """``lint-imports`` keeps every contract of ``pyproject.toml`` (it fails on a violation)."""
    lint = shutil.which("lint-imports", path=f"{Path(sys.executable).parent}{os.pathsep}"
                                              f"{os.environ.get('PATH', '')}")
    assert lint, "import-linter is a test dependency: pip install '.[test]'"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run([lint, "--no-cache", "--config", str(ROOT / "pyproject.toml")],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def _long_modules_without_reason() -> list[str]:
    missing = []
    for path in sorted((ROOT / "geomfeat").rglob("*.py")):
        n_lines = len(path.read_text(encoding="utf-8").splitlines())
        if n_lines <= MAX_LINES:
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if not any(line.startswith("Size:") for line in doc.splitlines()):
            missing.append(f"{path.relative_to(ROOT)} ({n_lines} lines)")
    return missing


def test_long_modules_say_why_in_their_docstring():
    """A module over 450 lines gives the reason in its docstring, on a line "Size: ..."."""
    missing = _long_modules_without_reason()
    assert not missing, (f"modules over {MAX_LINES} lines without a 'Size:' line in their "
                         f"docstring (split them, or say why not): {', '.join(missing)}")
