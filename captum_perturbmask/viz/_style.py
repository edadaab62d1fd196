"""The look of every figure: colours, colour map, opacities, font size, resolution."""

from __future__ import annotations

#: The colour map of every saliency map and context-weight map. It is perceptually uniform and
#: readable in grey scale and by colour-blind readers.
SALIENCY_CMAP = "inferno"
#: Colour of annotated boxes and region outlines (stands out against ``inferno`` and grey).
BOX_COLOR = "#00e5ff"
#: Line width of box and span outlines, in points.
BOX_LINEWIDTH = 1.5
#: Opacity of a saliency map drawn over its image.
OVERLAY_ALPHA = 0.6
#: Opacity of a shaded span (the ground-truth span on a series, the region B of variations).
SPAN_ALPHA = 0.3
#: Opacity of a variant's line drawn over the original series.
VARIANT_ALPHA = 0.85
#: Opacity of the grid of curve figures.
GRID_ALPHA = 0.3
#: Font size of panel titles, in points.
TITLE_SIZE = 9
#: Resolution of saved figures, dots per inch.
SAVE_DPI = 100
#: Longer image side drawn at most (larger images are downsampled for display only; the axes
#: keep the original pixel coordinates).
DISPLAY_MAX_SIDE = 1024

#: Line colour of each method in curve figures (other methods take the next default colours).
METHOD_COLORS = {"PerturbMask": "tab:red", "RISE": "tab:blue"}


def method_color(name: str, position: int) -> str:
    """The line colour of method ``name``, the ``position``-th of its figure: its own colour in
    :data:`METHOD_COLORS`, else the default colour cycle from its third colour on (the first
    two are the named methods')."""
    return METHOD_COLORS.get(name, f"C{(position + 2) % 10}")


#: Colours of variants: accepted, flipped to another class, too unsure, not scored.
STATUS_COLORS = {
    "kept": "tab:green",
    "flipped": "tab:red",
    "unsure": "tab:orange",
    "variant": "tab:blue",
}
#: Colour of a counterfactual candidate that keeps the class.
NEUTRAL_COLOR = "dimgray"
