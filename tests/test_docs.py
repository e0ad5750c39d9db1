"""The README tells the truth: its snippets run as written, its tables list what exists."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from geomfeat import list_models
from geomfeat.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_python_uses_no_undefined_names():
    """Before: the VAMPNet snippet used ``traj1``/``traj2`` that nothing defined."""
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    after_intro = README[README.index("## Python"):]  # the intro's one-liner is a teaser
    source = "\n".join(python_blocks(after_intro))
    result = subprocess.run([ruff, "check", "--no-cache", "--select", "F821",
                             "--stdin-filename", "README.py", "-"], input=source,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_options_table_lists_every_model():
    """Before: the table listed one of the three registered models."""
    row = next(line for line in README.splitlines() if line.startswith("| `model` |"))
    for model in list_models():
        assert f'"{model}"' in row


def test_dtype_help_does_not_promise_speed():
    """Before: "tf32, bfloat16 and float16 are faster" (3–8× slower on the CPU)."""
    embed = build_parser()._subparsers._group_actions[0].choices["embed"]
    text = next(a.help for a in embed._actions if "--dtype" in a.option_strings)
    assert "faster" not in text and "slower" in text


def test_readme_gives_the_cpu_only_torch_recipe():
    """Before: "torch==2.13.0 pins the CPU build" (from PyPI on Linux it is the CUDA one)."""
    assert "--index-url https://download.pytorch.org/whl/cpu" in README
    assert "pins the CPU build" not in README


def test_msm_example_says_it_needs_matplotlib(tmp_path):
    example = (ROOT / "examples" / "msm_example.py").read_text(encoding="utf-8")
    assert "needs matplotlib" in example and "msm_example.py` needs matplotlib" in README
    blocker = tmp_path / "matplotlib.py"  # shadows the real package: an environment without it
    blocker.write_text("raise ImportError('no matplotlib here')\n")
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "msm_example.py")],
                            capture_output=True, text=True, cwd=tmp_path,
                            env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "msm_example.py needs matplotlib: pip install matplotlib (or geomfeat's 'examples' or "
        "'test' extra)"]


@pytest.mark.parametrize("flag", ["--wait", "--no-unit-check", "--overwrite"])
def test_command_line_synopsis_lists_the_flags(flag):
    assert flag in README
