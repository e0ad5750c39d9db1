"""The README and the docs tell the truth: snippets run as written, tables list what exists,
links lead somewhere, and the docs site builds without a warning."""

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
DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text(encoding="utf-8")


def page(name: str) -> str:
    """The text of ``docs/<name>``."""
    return (DOCS / name).read_text(encoding="utf-8")


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize(("name", "start"), [("README.md", "## Example"),
                                           ("docs/getting-started.md", "## From Python")])
def test_python_snippets_use_no_undefined_names(name, start):
    """Before: the VAMPNet snippet used ``traj1``/``traj2`` that nothing defined.

    The snippets of a page, read in order from ``start``, run as one script."""
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    text = (ROOT / name).read_text(encoding="utf-8")
    source = "\n".join(python_blocks(text[text.index(start):]))
    assert "GeomFeaturizer(" in source
    result = subprocess.run([ruff, "check", "--no-cache", "--select", "F821",
                             "--stdin-filename", "README.py", "-"], input=source,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_options_table_lists_every_model():
    """Before: the table listed one of the three registered models."""
    row = next(line for line in page("featurizer.md").splitlines()
               if line.startswith("| `model` |"))
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
    assert "needs matplotlib" in example
    assert "msm_example.py` needs matplotlib" in page("development.md")
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
    synopsis = page("cli.md").split("## Synopsis", 1)[1].split("```", 2)[1]
    assert flag in synopsis


# --- the README is the front door; the docs site holds the rest -------------------------------

README_COMMANDS = [
    'python3 -m venv .venv && . .venv/bin/activate && pip install -q torch==2.13.0 . && geomfeat '
    "embed examples/ala2/ala2.xtc examples/ala2/ala2.pdb -o ala2_visnet.npy",
    'python3 -m venv .venv && . .venv/bin/activate && pip install -q torch==2.13.0 ".[test]" && '
    "pytest",
]


def test_readme_is_short_and_keeps_the_two_commands():
    """Before: 485 lines of tutorial, reference, tables and design notes."""
    assert len(README.splitlines()) <= 150
    for command in README_COMMANDS:
        assert f"```sh\n{command}\n```" in README


def test_readme_links_every_guide():
    """Everything the README dropped lives in a docs page, and the README points at each."""
    guides = sorted(p.name for p in DOCS.glob("*.md") if p.name != "index.md")
    assert "getting-started.md" in guides and "cli.md" in guides
    for name in guides:
        assert f"(docs/{name})" in README, name


def slug(heading: str) -> str:
    """The anchor GitHub and MyST (``myst_heading_anchors``) give a markdown heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {slug(m) for m in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


def relative_links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t)]  # no http:, mailto:


def test_slug_is_the_markdown_anchor():
    assert slug("Install: the two commands") == "install-the-two-commands"
    assert (slug("Do embeddings make better kinetic models? `geomfeat compare`")
            == "do-embeddings-make-better-kinetic-models-geomfeat-compare")


@pytest.mark.parametrize("source", ["README.md", *sorted(
    str(p.relative_to(ROOT)) for p in DOCS.glob("*.md"))])
def test_relative_links_resolve(source):
    """Every relative link of the README and the docs pages leads to a file that exists, and
    every ``#anchor`` to a heading of that page (checked offline, on GitHub's rendering too)."""
    path = ROOT / source
    broken = []
    for link in relative_links(path):
        target, _, anchor = link.partition("#")
        file = (path.parent / target).resolve() if target else path
        if not file.exists():
            broken.append(f"{link}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{link}: no heading with that anchor")
    assert not broken, broken


def test_docs_site_builds_without_warnings(tmp_path):
    """Sphinx with warnings as errors: docstrings that do not render, links to pages or headings
    that do not exist, missing images, pages outside the table of contents. No network."""
    out = tmp_path / "html"
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(DOCS), str(out)],
        capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-5000:]  # -W: any warning fails the build
    api = (out / "api" / "featurizer.html").read_text(encoding="utf-8")
    assert "geomfeat.GeomFeaturizer" in api and "memory_budget" in api
    cli = (out / "cli.html").read_text(encoding="utf-8")
    assert "--memory-budget" in cli and "--lag" in cli and "--init" in cli  # embed/compare/pretrain
    assert not re.search(r"[\s(]–[a-z]", cli)  # help text as typed: "--top", not "–top"
    for guide in DOCS.glob("*.md"):
        assert (out / guide.with_suffix(".html").name).exists(), guide.name
