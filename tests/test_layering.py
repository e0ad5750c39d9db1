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
    result = subprocess.run([lint, "--no-cache", str(ROOT / "pyproject.toml")],
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


def _layer_ranks() -> dict[str, int]:
    """Top-level module name → its layer's index in the contract (0: the top)."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c["layers"] for c in config["contracts"] if c["type"] == "layers")
    return {name.strip(): rank for rank, layer in enumerate(layers)
            for name in layer.replace("|", ":").split(":")}


def test_an_embedding_job_only_calls_down_the_layers(example_files, tmp_path, weights_url):
    """Through ``embed_jobs`` (serial), no geomfeat function calls one in a higher layer.

    Generator resumptions are left out: a writer pulling rows from the job's generator of
    embeddings is data flowing down, not a call back up.
    """
    import inspect

    from geomfeat.cluster import embed_jobs

    ranks = _layer_ranks()

    def rank(frame) -> int | None:
        parts = frame.f_globals.get("__name__", "").split(".")
        return ranks.get(parts[1]) if parts[0] == "geomfeat" and len(parts) > 1 else None

    upward: set[str] = set()

    def profile(frame, event, arg) -> None:
        if event != "call" or frame.f_code.co_flags & (inspect.CO_GENERATOR
                                                       | inspect.CO_ASYNC_GENERATOR):
            return
        callee, caller = rank(frame), frame.f_back and rank(frame.f_back)
        if callee is not None and caller is not None and callee < caller:
            upward.add(f"{frame.f_back.f_globals['__name__']}.{frame.f_back.f_code.co_name} → "
                       f"{frame.f_globals['__name__']}.{frame.f_code.co_name}")

    xtc, pdb = example_files
    sys.setprofile(profile)
    try:
        manifest = embed_jobs("visnet-denali", [(xtc, tmp_path / "a.npy")], pdb, stride=200,
                              progress=False)
    finally:
        sys.setprofile(None)
    assert manifest.count("written") == 1
    assert not upward, sorted(upward)
