"""Sphinx configuration for captum-perturbmask.

Built in CI with ``sphinx-build -W --keep-going -n -b html docs docs/_build/html``: warnings are
errors and every cross-reference must resolve (nitpicky mode).
"""

import captum_perturbmask

project = "captum-perturbmask"
author = "captum-perturbmask developers"
copyright = "2026, captum-perturbmask developers"
release = captum_perturbmask.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.mathjax",
    "myst_parser",  # the results page and the changelog include the repository's Markdown
    "sphinxarg.ext",  # the CLI reference is generated from the argparse parser
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "examples"]
# Furo: a maintained, accessible theme (light and dark, a search box, a page outline, a
# layout that works on phones); it ships its own assets, so the built site loads nothing from
# the network either.
html_theme = "furo"
html_title = "captum-perturbmask"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme_options = {
    "sidebar_hide_name": False,
    "navigation_with_keys": True,
    "top_of_page_buttons": [],
    "light_css_variables": {
        "color-brand-primary": "#7a1fa2",
        "color-brand-content": "#7a1fa2",
        "font-stack--monospace": '"SFMono-Regular", Menlo, Consolas, "Liberation Mono", monospace',
    },
    "dark_css_variables": {
        "color-brand-primary": "#d58cf5",
        "color-brand-content": "#d58cf5",
    },
}
pygments_style = "friendly"
pygments_dark_style = "monokai"

autodoc_typehints = "description"
autodoc_member_order = "bysource"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
myst_heading_anchors = 3
smartquotes_action = "qe"  # keep "--" as typed: option names in the CLI reference

# Every internal reference must resolve. Names from other projects cannot be resolved offline
# (no intersphinx inventories are downloaded), so they are listed here, one by one.
nitpicky = True
nitpick_ignore = [
    ("py:class", "datetime"),  # datetime.datetime, as annotated
    ("py:class", "datetime.datetime"),
    # matplotlib, as annotated (``from matplotlib.figure import Figure``)
    ("py:class", "Figure"),
    ("py:class", "matplotlib.figure.Figure"),
    # Python standard library
    ("py:class", "collections.abc.Callable"),
    ("py:class", "collections.abc.Iterable"),
    ("py:class", "collections.abc.Iterator"),
    ("py:class", "collections.abc.Mapping"),
    ("py:class", "collections.abc.Sequence"),
    ("py:class", "os.PathLike"),
    ("py:class", "pathlib.Path"),
    ("py:class", "argparse.ArgumentParser"),
    ("py:func", "os.replace"),
    # PyTorch
    ("py:class", "torch.Tensor"),
    ("py:class", "torch.nn.Conv1d"),
    ("py:class", "Tensor"),  # torch.Tensor as annotated (``from torch import Tensor``)
    ("py:class", "torch.device"),
    ("py:class", "torch.dtype"),
    ("py:class", "torch.Generator"),
    ("py:class", "torch._C.Generator"),
    ("py:class", "torch.nn.Module"),
    ("py:class", "nn.Module"),  # torch.nn.Module as annotated (``from torch import nn``)
    ("py:class", "torch.nn.modules.module.Module"),
    ("py:class", "torch.nn.Conv2d"),
    # Captum
    ("py:class", "captum.attr.PerturbationAttribution"),
    ("py:class", "captum._utils.typing.TensorOrTupleOfTensorsGeneric"),
    ("py:class", "captum.attr.FeatureAblation"),
    ("py:class", "captum.attr.IntegratedGradients"),
    ("py:class", "captum.attr.LayerGradCam"),
    ("py:class", "captum.attr.Lime"),
    ("py:class", "captum.attr.Occlusion"),
    ("py:func", "captum.attr.visualization.visualize_image_attr"),
    # NumPy, Matplotlib, scikit-learn
    ("py:class", "numpy.ndarray"),
    ("py:class", "matplotlib.figure.Figure"),
    ("py:func", "sklearn.datasets.load_digits"),
]
