"""Sphinx configuration for the imsdk documentation."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

project = "imsdk"
author = "imsdk maintainers"
copyright = "2026, imsdk maintainers"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.graphviz",
    "sphinx.ext.napoleon",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

html_theme = "furo"
html_title = "imsdk"
html_static_path = ["_static"]

graphviz_output_format = "svg"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
# Generated protobuf classes carry no useful docstrings and confuse autodoc's signature parser.
autodoc_mock_imports: list[str] = []
toc_object_entries = False  # autodoc objects stay out of the navigation tree (it is copied per page)
