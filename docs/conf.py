"""Sphinx configuration for captum-perturbmask."""

project = "captum-perturbmask"
author = "captum-perturbmask developers"
copyright = "2026, captum-perturbmask developers"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.mathjax",
]
autodoc_typehints = "description"
autodoc_member_order = "bysource"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
nitpicky = False
html_theme = "alabaster"
exclude_patterns = ["_build"]
suppress_warnings = ["ref.python"]
html_static_path = ["_static"]
