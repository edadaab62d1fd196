"""The report of an evaluation or a comparison: one self-contained HTML page.

:func:`write_report` (and :func:`report_html`, the same page as a string) shows an
:class:`~captum_perturbmask.evaluation.EvaluationResult` the way a reviewer reads it: the
configuration of the run, the summary with 95% intervals, the paired differences against the
reference method with their verdicts, the mean insertion / deletion curves, a grid of maps
(examples x methods) and a view of each kept example (its maps, its own curves and scores).
Everything it shows comes from the result: the tables from its summary, the curves and scores
of each example from its records, the maps and inputs from the examples it kept
(:func:`~captum_perturbmask.evaluation.compare` keeps all of them,
:func:`~captum_perturbmask.evaluation.evaluate` the first ``keep_examples``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from captum_perturbmask._core.checks import check_choice, check_class_names, check_int
from captum_perturbmask.evaluation.results import EvaluationResult, format_value
from captum_perturbmask.evaluation.scoring import CONSISTENCY_COLUMNS, CURVE_GRID, Column
from captum_perturbmask.report._html import Cell, escape, figure, page, section, table
from captum_perturbmask.report.tables import (
    config_rows,
    config_table,
    environment_rows,
    paired_table,
    summary_table,
    value_text,
    verdict_lines,
)

__all__ = ["SECTIONS", "report_html", "write_report"]

#: Resolution of the report's figures (small files; the page scales them to its width).
REPORT_DPI = 90
_CONSISTENCY = {c.key for c in CONSISTENCY_COLUMNS}
#: Caption of the curves figure.
CURVES = (
    "Top: the model's mean confidence in the target while the most salient part of the input "
    "is inserted (into the reference) or deleted (to the reference). Bottom: the per-example "
    "areas under the curves, the values the summary averages."
)


def _check_result(result: object, name: str = "result") -> EvaluationResult:
    if not isinstance(result, EvaluationResult):
        raise TypeError(
            f"`{name}` must be an EvaluationResult (from evaluate or compare), got "
            f"{type(result).__name__}."
        )
    return result


def _beds(results: object) -> dict[str, EvaluationResult]:
    """``result`` as bed name -> result (one result: one unnamed bed)."""
    if isinstance(results, Mapping):
        if not results:
            raise ValueError(
                "`result` must hold at least one EvaluationResult, got an empty mapping."
            )
        return {str(k): _check_result(v, f"result[{k!r}]") for k, v in results.items()}
    return {"": _check_result(results)}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "run"


# ------------------------------------------------------------------------------ examples
class _Examples:
    """The kept examples of a bed: inputs, maps, boxes, dataset indices, targets."""

    def __init__(
        self,
        result: EvaluationResult,
        inputs: Tensor | None,
        maps: Mapping[str, Tensor] | None,
        boxes: Tensor | None,
    ) -> None:
        kept = result.examples
        self.maps = dict(result.maps if maps is None else maps)
        if inputs is None and kept is not None:
            inputs, boxes = kept.inputs, kept.boxes if boxes is None else boxes
        self.inputs = None if inputs is None else inputs.detach().cpu()
        n = 0 if self.inputs is None else self.inputs.shape[0]
        self.indices = (
            list(kept.indices) if kept is not None and len(kept.indices) == n else list(range(n))
        )
        for name, m in self.maps.items():
            if not isinstance(m, Tensor) or m.shape[0] != n:
                got = tuple(m.shape) if isinstance(m, Tensor) else type(m).__name__
                raise ValueError(f"`maps[{name!r}]` must hold one map per input ({n}), got {got}.")
        self.maps = {k: v.detach().cpu() for k, v in self.maps.items()}
        self.boxes = None if boxes is None else torch.as_tensor(boxes).detach().cpu().double()
        self.usable = n > 0 and bool(self.maps)

    def box_rows(self, rows: Sequence[int]) -> Tensor | None:
        """Boxes of ``rows``, or ``None`` unless every one of them has a box."""
        if self.boxes is None:
            return None
        picked = self.boxes[list(rows)]
        return picked if bool(torch.isfinite(picked).all()) else None


def _targets(runs: Mapping[int, Mapping[str, Mapping[str, Any]]], indices: Sequence[int]) -> list:
    """The explained class of every example (``None`` when not one int)."""
    out = []
    for i in indices:
        t = next((r.get("target") for r in runs.get(i, {}).values()), None)
        out.append(t if isinstance(t, int) and not isinstance(t, bool) else None)
    return out


def _maps_png(ex: _Examples, rows: Sequence[int], targets: list, names: list[str] | None) -> bytes:
    """The maps of the kept examples ``rows`` (one figure row each), titled by dataset index."""
    from captum_perturbmask import viz

    rows = list(rows)
    picked = [targets[k] for k in rows]
    known = None not in picked
    fig = viz.plot_maps(
        {n: m[rows] for n, m in ex.maps.items()},
        ex.inputs[rows],
        indices=range(len(rows)),
        targets=picked if known else None,
        class_names=names if known else None,
        boxes=ex.box_rows(rows),
    )
    per_row = (1 + len(ex.maps)) * (ex.inputs.shape[1] if ex.inputs.ndim == 3 else 1)
    for j, k in enumerate(rows):
        ax = fig.axes[j * per_row]
        title = re.sub(r"^(input|series) \d+", f"example {ex.indices[k]}", ax.get_title())
        ax.set_title(title, fontsize=ax.title.get_fontsize())
    return viz.png_bytes(fig, dpi=REPORT_DPI)


def _run_columns(result: EvaluationResult) -> list[Column]:
    """The present columns of one run (the consistency columns compare runs)."""
    return [c for c in result.present_columns() if c.key not in _CONSISTENCY]


def _class_text(target: int | None, names: list[str] | None) -> str:
    if target is None:
        return ""
    return f"class {target}" + (f" ({names[target]})" if names is not None else "")


def _example_view(
    result: EvaluationResult,
    ex: _Examples,
    k: int,
    runs: Mapping[str, Mapping[str, Any]],
    targets: list,
    names: list[str] | None,
    digits: int,
    prefix: str = "",
) -> str:
    """One kept example (row ``k``): its maps, its own insertion / deletion curves with their
    areas, and its scores per method (``runs``: method -> its first-seed record)."""
    from captum_perturbmask import viz

    index, methods = ex.indices[k], [r["method"] for r in result.summary]
    label = _class_text(targets[k], names)
    heading = f"Example {index}" + (f", {label}" if label else "")
    maps = figure(
        _maps_png(ex, [k], targets, names),
        f"{heading}: the input and the map of each method ({', '.join(ex.maps)}).",
    )
    curve_cols = result.curve_columns()
    curves = {
        m: {c.key: runs[m][f"curve_{c.key}"] for c in curve_cols if runs[m].get(f"curve_{c.key}")}
        for m in methods
        if m in runs
    }
    curves = {m: c for m, c in curves.items() if c}
    side = []
    if curves:
        scores = {m: {c.key: runs[m].get(c.key) for c in curve_cols} for m in curves}
        fig = viz.plot_perturbation_curves(
            curves, CURVE_GRID, scores=scores, methods=methods, size=(3.6, 2.6)
        )
        side.append(
            figure(
                viz.png_bytes(fig, dpi=REPORT_DPI),
                f"Insertion and deletion curves of example {index}, one line per "
                "method, the area under each curve in the legend.",
            )
        )
    cols = _run_columns(result)
    rows = []
    for m in methods:
        r = runs.get(m)
        if r is None:
            rows.append([Cell(m, data={"method": m}), *(Cell("failed") for _ in cols)])
            continue
        rows.append(
            [
                Cell(m, data={"method": m}),
                *(
                    Cell(
                        format_value(r.get(c.key), None, digits),
                        data={"key": c.key, "value": r.get(c.key)},
                    )
                    for c in cols
                ),
            ]
        )
    seeds = sorted({r["seed"] for r in runs.values()})
    side.append(
        table(
            ["method", *(c.header for c in cols)],
            rows,
            f"Scores of example {index} (seed {', '.join(map(str, seeds))}: the run "
            "whose map is shown).",
            css="example",
        )
    )
    body = maps + '<div class="pair">' + "".join(f"<div>{s}</div>" for s in side) + "</div>"
    anchor = f"{prefix}example-{index}"
    return (
        f'<article class="example" id="{anchor}" aria-labelledby="{anchor}-title">'
        f'<h3 id="{anchor}-title">{escape(heading)}</h3>{body}</article>'
    )


# ------------------------------------------------------------------------------ the page
#: The parts of a report, in page order (``sections=`` selects some of them).
SECTIONS = ("configuration", "summary", "paired", "curves", "maps", "examples")


@dataclass(frozen=True)
class _Options:
    """The checked keywords of one page."""

    sections: frozenset[str]
    max_examples: int
    grid_examples: int
    digits: int


def _bed_sections(
    result: EvaluationResult,
    ex: _Examples,
    names: list[str] | None,
    prefix: str,
    opts: _Options,
) -> list[tuple[str, str, str]]:
    """The sections of one bed after its configuration: (anchor, title, HTML)."""
    from captum_perturbmask import viz

    want, digits = opts.sections, opts.digits
    out = []
    if "summary" in want:
        out.append((f"{prefix}summary", "Summary", _summary_body(result, digits)))
    if "paired" in want and result.paired:
        lines = "".join(f"<li>{escape(t)}</li>" for t in verdict_lines(result))
        title = f"Paired differences against {result.reference_method}"
        out.append((f"{prefix}paired", title, f"<ul>{lines}</ul>{paired_table(result, digits)}"))
    if "curves" in want and result.curve_columns():
        png = viz.png_bytes(result.plot(), dpi=REPORT_DPI)
        cols = " and ".join(c.label for c in result.curve_columns())
        alt = (
            f"Mean {cols} curves of each method (top) and the spread of the per-example areas "
            "under them (bottom, box plots with the mean as a triangle)."
        )
        out.append((f"{prefix}curves", "Insertion and deletion curves", figure(png, alt, CURVES)))
    if not want & {"maps", "examples"}:
        return out
    if not ex.usable:
        note = (
            '<p class="note">No maps were kept with this result: compare keeps every '
            "example, evaluate(keep_examples=K) (or evaluate --report-examples K) the "
            "first K.</p>"
        )
        out.append((f"{prefix}maps", "Maps", note))
        return out
    runs = result.example_runs(ex.indices)
    targets = _targets(runs, ex.indices)
    n = len(ex.indices)
    grid = min(n, opts.grid_examples) if "maps" in want else 0
    if grid:
        caption = (
            f"Maps of {_first(grid, n, result.n_examples)} (rows) by every method "
            "(columns), first seed. Each map's colour scale runs from its median to its "
            "maximum (the metrics use only the ranking); outlines: the evidence box or "
            "span where the data has one."
        )
        alt = (
            f"Saliency maps: one row per example ({', '.join(map(str, ex.indices[:grid]))}), "
            f"the input then one column per method ({', '.join(ex.maps)})."
        )
        png = _maps_png(ex, range(grid), targets, names)
        out.append((f"{prefix}maps", "Maps", figure(png, alt, caption)))
    shown = min(n, opts.max_examples) if "examples" in want else 0
    if shown:
        intro = (
            f'<p class="note">{escape(_first(shown, n, result.n_examples).capitalize())}'
            f", {'each ' if shown > 1 else ''}with its own curves and scores.</p>"
        )
        views = "".join(
            _example_view(result, ex, k, runs.get(ex.indices[k], {}), targets, names, digits,
                         prefix)
            for k in range(shown)
        )  # fmt: skip
        out.append((f"{prefix}examples", "Examples", intro + views))
    return out


def _first(shown: int, kept: int, total: int) -> str:
    """``"the first 4 of the 540 examples evaluated"``, or ``"all 8 examples"``.

    Example:
        >>> print(_first(4, 8, 540), _first(1, 1, 32), _first(8, 8, 8), sep="\\n")
        the first 4 of the 540 examples evaluated (8 kept)
        the first of the 32 examples evaluated
        all 8 examples
    """
    if shown == total:
        return f"all {total} examples"
    more = "" if kept == shown else f" ({kept} kept)"
    return f"the first{'' if shown == 1 else f' {shown}'} of the {total} examples evaluated{more}"


def _summary_body(result: EvaluationResult, digits: int) -> str:
    n = result.n_examples
    methods = [r["method"] for r in result.summary]
    lead = f"{len(methods)} method{'s' * (len(methods) > 1)} on {n} example{'s' * (n != 1)}."
    if n < 20:
        lead += " Few examples give wide intervals: evaluate a dataset before ranking methods."
    errors = {r["method"]: r["errors"] for r in result.summary if r.get("errors")}
    if errors:
        lead += " Failed runs (left out): " + ", ".join(f"{m} {k}" for m, k in errors.items()) + "."
    return f"<p>{escape(lead)}</p>" + summary_table(result, digits)


def _lead(result: EvaluationResult) -> str:
    """The sentence under the title: what was run on what."""
    config = result.config
    text = f"{', '.join(r['method'] for r in result.summary)} on {result.n_examples} examples"
    if config.get("model"):
        text += f" of {config['model']}"
    if config.get("budget"):
        text += f", {config['budget']} forward passes per example"
    if config.get("seeds"):
        text += f", seeds {value_text(config['seeds'])}"
    if result.reference_method:
        text += f"; paired differences against {result.reference_method}"
    return text + "."


def _settings(result: EvaluationResult, about: list, env: list | None) -> str:
    """The configuration of one run (with the environment beside it, when given)."""
    settings = config_table([*about, *config_rows(result)], "The settings of the run.")
    if env is None:
        return settings
    where = config_table(env, "Where and when this report was written.")
    return f'<div class="pair"><div>{settings}</div><div>{where}</div></div>'


def report_html(
    result: EvaluationResult | Mapping[str, EvaluationResult],
    *,
    title: str = "Saliency evaluation report",
    about: Mapping[str, Any] | None = None,
    class_names: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
    inputs: Tensor | None = None,
    maps: Mapping[str, Tensor] | None = None,
    boxes: Tensor | None = None,
    max_examples: int = 8,
    grid_examples: int = 4,
    sections: Sequence[str] | None = None,
    digits: int = 3,
    date: datetime | None = None,
) -> str:
    """The report of an evaluation or a comparison: one self-contained HTML page, as text.

    ``write_report(compare(model, x, target=y, boxes=b), "report.html")`` writes it
    (:func:`write_report`). The page opens in any browser, offline: its style is inline, its
    figures are inline PNGs, it loads nothing. It holds

    * ``configuration``: ``about`` (your own rows, e.g. the model's name), the run's settings
      (``result.config``: model, data, methods, budget, seeds, metrics, reference, ...) and
      the versions of the package, PyTorch, Captum and Python, with the date;
    * ``summary``: mean ± 95% interval per method and metric, the best mean in bold;
    * ``paired``: the differences against the reference method, each with its verdict
      (better, worse, tie: whether its interval excludes zero), one sentence per method;
    * ``curves``: the mean insertion / deletion curves and the spread of the per-example
      areas;
    * ``maps``: a grid of the first ``grid_examples`` kept examples (rows) by every method;
    * ``examples``: a view of each of the first ``max_examples`` kept examples: its maps, its
      own insertion / deletion curves (from its records) and its scores.

    The maps and inputs are the ones the result kept: every example of
    :func:`~captum_perturbmask.evaluation.compare`, the first ``keep_examples`` of
    :func:`~captum_perturbmask.evaluation.evaluate`; the page says how many of how many it
    shows. A result without kept maps (e.g. rebuilt by
    :func:`~captum_perturbmask.evaluation.summarize`) gets its tables and curves, or pass
    ``inputs`` and ``maps``.

    Args:
        result: An :class:`~captum_perturbmask.evaluation.EvaluationResult`, or a mapping
            name -> result (one part per data set, e.g. two beds of a demo).
        title: Title of the page.
        about: Extra configuration rows, label -> value, shown first.
        class_names: Names of the classes, indexed by target (a mapping name -> names with
            several results).
        inputs: The inputs :math:`(K, C, H, W)` or :math:`(K, C, T)` to draw, instead of the
            kept ones (a single result).
        maps: Method -> maps :math:`(K, C, *S)` of ``inputs``, instead of ``result.maps``.
        boxes: Evidence boxes :math:`(K, 4)` or spans :math:`(K, 2)` of ``inputs``.
        max_examples: Examples with a view of their own (the first ones kept).
        grid_examples: Rows of the maps grid.
        sections: The parts to show, among
            :data:`~captum_perturbmask.report.evaluation.SECTIONS` (default all).
        digits: Decimals of the tables.
        date: The date shown (default now, UTC).

    Returns:
        The HTML document.

    Raises:
        TypeError: ``result`` is not an EvaluationResult (or a mapping of them), ``about``
            not a mapping, ``class_names`` not strings.
        ValueError: ``maps`` do not hold one map per input, ``inputs``/``maps``/``boxes``
            given with several results, a count is negative, a section is unknown.

    Example:
        >>> import torch
        >>> from captum_perturbmask.evaluation import compare
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 3)).eval()
        >>> result = compare(model, torch.rand(2, 3, 4, 4), ["Occlusion"], budget=4, seeds=(0,))
        >>> page = report_html(result, sections=["configuration", "summary"])
        >>> page.startswith("<!DOCTYPE html>"), 'id="summary"' in page, 'id="maps"' in page
        (True, True, False)
    """
    beds = _beds(result)
    multi = len(beds) > 1 or "" not in beds
    if multi and any(v is not None for v in (inputs, maps, boxes)):
        raise ValueError("`inputs`, `maps` and `boxes` apply to a single result, not a mapping.")
    if isinstance(sections, str) or (sections is not None and not isinstance(sections, Sequence)):
        raise TypeError(f"`sections` must be a sequence of names, got {type(sections).__name__}.")
    if sections is not None and not sections:
        raise ValueError(f"`sections` must name at least one of {SECTIONS}, got none.")
    opts = _Options(
        frozenset(check_choice(s, "sections", SECTIONS) for s in (sections or SECTIONS)),
        check_int(max_examples, "max_examples", 0),
        check_int(grid_examples, "grid_examples", 0),
        check_int(digits, "digits", 0),
    )
    if about is not None and not isinstance(about, Mapping):
        raise TypeError(f"`about` must be a mapping label -> value, got {type(about).__name__}.")
    about_rows = [(str(k), value_text(v)) for k, v in (about or {}).items()]
    env = environment_rows(date)
    contents, body = [], []
    if multi and "configuration" in opts.sections:
        where = config_table([*about_rows, *env], "Where and when this report was written.")
        body.append(section("environment", "Run", where))
        contents.append(("environment", "Run"))
    for bed, res in beds.items():
        names = _check_names(class_names, bed, multi)
        ex = _Examples(res, inputs, maps, boxes)
        prefix = f"{_slug(bed)}-" if multi else ""
        parts = []
        if "configuration" in opts.sections:
            settings = _settings(res, [] if multi else about_rows, None if multi else env)
            parts.append((f"{prefix}configuration", "Configuration", settings))
        parts += _bed_sections(res, ex, names, prefix, opts)
        html_parts = "".join(section(a, t, h, 3 if multi else 2) for a, t, h in parts)
        if multi:
            body.append(section(_slug(bed), bed, html_parts))
            contents.append((_slug(bed), bed))
        else:
            body.append(html_parts)
            contents += [(a, t.split(" against ")[0]) for a, t, _ in parts]
    lead = f"{len(beds)} evaluations: {', '.join(beds)}." if multi else _lead(beds[""])
    import captum_perturbmask

    footer = (
        f"Written by captum-perturbmask {captum_perturbmask.__version__}. This page is "
        "self-contained: its style and figures are inside it, it loads nothing."
    )
    return page(title, "".join(body), lead=lead, contents=contents, footer=footer)


def _check_names(class_names: object, bed: str, multi: bool) -> list[str] | None:
    if isinstance(class_names, Mapping):
        class_names = class_names.get(bed)
    return check_class_names(class_names, f"class_names[{bed!r}]" if multi else "class_names")


def write_report(
    result: EvaluationResult | Mapping[str, EvaluationResult],
    path: str | os.PathLike,
    **options: Any,
) -> Path:
    """Write the report of an evaluation or a comparison: one self-contained HTML file.

    The page is :func:`report_html`'s (``options`` are its keywords: ``title``, ``about``,
    ``class_names``, ``inputs``, ``maps``, ``boxes``, ``max_examples``, ``grid_examples``,
    ``sections``, ``digits``, ``date``), written whole or not at all.

    Args:
        result: An :class:`~captum_perturbmask.evaluation.EvaluationResult`, or a mapping
            name -> result.
        path: The HTML file to write (its folder must exist).
        **options: Keywords of :func:`report_html`.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        TypeError, ValueError: as :func:`report_html`; nothing is written then.

    Example:
        >>> import tempfile, torch
        >>> from captum_perturbmask.evaluation import compare
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 3)).eval()
        >>> result = compare(model, torch.rand(2, 3, 4, 4), ["Occlusion"], budget=4, seeds=(0,))
        >>> path = write_report(result, tempfile.mkdtemp() + "/report.html", max_examples=1)
        >>> text = path.read_text(encoding="utf-8")
        >>> text.count('<article class="example"'), 'src="http' in text
        (1, False)
    """
    text = report_html(result, **options)
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
