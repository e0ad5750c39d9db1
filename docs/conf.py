"""Sphinx configuration of geomfeat's documentation site.

Build it from the repository root (warnings are errors, as in the test suite)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Nothing here reaches the network: no intersphinx, no notebooks, no link checks against remote
sites (``tests/test_docs.py`` checks the internal links offline).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # document this checkout's geomfeat, installed or not

from geomfeat import __version__  # noqa: E402

project = "geomfeat"
author = "geomfeat developers"
copyright = "geomfeat developers, MIT licence"
release = __version__
version = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinxarg.ext",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
smartquotes = False  # keep --flags and 'quotes' as typed (no en dashes in the CLI help)
exclude_patterns = ["_build", "**/.ipynb_checkpoints"]

# MyST: the guides are plain markdown (GitHub renders them too); heading anchors so that
# ``page.md#section`` links resolve, and a warning (an error under -W) for every link to a
# page or anchor that does not exist.
myst_heading_anchors = 4
myst_enable_extensions: list[str] = []  # plain CommonMark + tables, as GitHub renders it
myst_all_links_external = False

# autodoc + napoleon: numpy-style docstrings, signatures with their type hints.
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
autodoc_typehints = "description"
autodoc_member_order = "bysource"
autodoc_default_options: dict[str, object] = {}  # :members: where a page wants them

# Not nitpicky: without intersphinx (no network) every numpy/torch/mdtraj type in a signature
# would be an unresolved reference. Links between pages and to headings are still checked:
# MyST warns about each one that does not resolve, and -W makes that an error.
nitpicky = False

html_theme = "furo"
html_title = f"geomfeat {__version__}"
html_static_path: list[str] = []

# Section headings the docstrings use beyond numpydoc's standard ones.
napoleon_custom_sections = ["Shapes", "Spec strings", "Implementation notes"]
