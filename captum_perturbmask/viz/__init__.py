"""Figures: saliency maps, one explanation, acceptable variations, convergence and
insertion / deletion curves.

Every figure of the package (the demo, the ``explain`` command, the docs) is drawn here, in one
style:

* saliency in one perceptually uniform colour map, :data:`SALIENCY_CMAP`, over a grey copy of
  the image, with a colour bar in the map's own units;
* each map's colour scale runs from its median (``clip="median"``, the default: the upper half
  of the pixel ranking that the metrics use, free of offsets such as RISE's expected score) or
  its minimum (``clip="min"``) to its maximum; a constant map (e.g. all zero) is drawn and its
  title says so;
* boxes ``(x1, y1, x2, y2)`` in the pixel-edge convention of
  :mod:`captum_perturbmask.metrics.localization` (``x2``, ``y2`` exclusive) drawn exactly: the
  axes of an image panel are pixel edges, the image spans ``[0, W] x [0, H]``;
* time series :math:`(B, C, T)` as lines over step edges (step ``t`` covers ``[t, t + 1)``,
  drawn at its centre ``t + 0.5``; the axes span ``[0, T]``), the saliency as a colour-mapped
  band under the curve, spans ``(start, end)`` drawn exactly, one stacked panel per channel;
* class names in the titles when they are known.

Every function builds a :class:`matplotlib.figure.Figure` directly (no ``pyplot``: no global
state, any backend, no display needed), returns it, and saves it when ``path`` is given.

The figures live by subject, in ``viz.images`` (:func:`plot_maps`, :func:`plot_explanation`),
``viz.series`` (:func:`plot_series_maps`), ``viz.variations`` (:func:`plot_variations`),
``viz.variation_distribution`` (:func:`plot_variation_distribution`) and
``viz.curves`` (:func:`plot_convergence`, :func:`plot_perturbation_curves`), and are imported
from here. Matplotlib is imported when a figure is drawn, not with this package.
"""

# The look lives in viz._style; its constants are importable from here too (explicit
# re-exports; only SALIENCY_CMAP, documented below, is in __all__).
from captum_perturbmask.viz import _style
from captum_perturbmask.viz._draw import png_bytes
from captum_perturbmask.viz._style import BOX_COLOR as BOX_COLOR
from captum_perturbmask.viz._style import DISPLAY_MAX_SIDE as DISPLAY_MAX_SIDE
from captum_perturbmask.viz._style import OVERLAY_ALPHA as OVERLAY_ALPHA
from captum_perturbmask.viz._style import SAVE_DPI as SAVE_DPI
from captum_perturbmask.viz._style import SPAN_ALPHA as SPAN_ALPHA
from captum_perturbmask.viz._style import TITLE_SIZE as TITLE_SIZE
from captum_perturbmask.viz.curves import plot_convergence, plot_perturbation_curves
from captum_perturbmask.viz.images import plot_explanation, plot_maps
from captum_perturbmask.viz.series import plot_series_maps
from captum_perturbmask.viz.variation_distribution import plot_variation_distribution
from captum_perturbmask.viz.variations import plot_variations

#: The colour map of every saliency map and context-weight map. It is perceptually uniform and
#: readable in grey scale and by colour-blind readers (its home, with the rest of the look, is
#: ``viz._style``).
SALIENCY_CMAP = _style.SALIENCY_CMAP

__all__ = [
    "SALIENCY_CMAP",
    "plot_convergence",
    "plot_explanation",
    "plot_maps",
    "plot_perturbation_curves",
    "plot_series_maps",
    "plot_variation_distribution",
    "plot_variations",
    "png_bytes",
]
