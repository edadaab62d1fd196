"""Helpers of the figure tests: the panels, colour bars and rectangles of a figure."""

from __future__ import annotations

from matplotlib.patches import Rectangle

NAMES = ["zero", "one", "two", "three"]


def colorbars_of(fig) -> list:
    return [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]


def panels_of(fig) -> list:
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def rectangles_of(ax) -> list[Rectangle]:
    return [p for p in ax.patches if isinstance(p, Rectangle)]
