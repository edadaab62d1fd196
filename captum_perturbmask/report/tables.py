"""The tables of a report: the configuration of a run, the summary with 95% intervals and the
paired differences against the reference method, with their verdicts."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import torch

from captum_perturbmask.evaluation.results import EvaluationResult, format_value
from captum_perturbmask.evaluation.scoring import Column
from captum_perturbmask.report._html import Cell, escape, table

__all__ = [
    "CONFIG_LABELS",
    "config_rows",
    "config_table",
    "environment_rows",
    "number_cell",
    "paired_table",
    "summary_table",
    "value_text",
    "verdict",
    "verdict_lines",
]

#: Labels of the configuration keys, in the order they are shown (other keys follow as named).
CONFIG_LABELS = {
    "model": "model",
    "data": "data",
    "n_examples": "examples evaluated",
    "methods": "methods",
    "budget": "forward passes per example",
    "seeds": "seeds",
    "batch_size": "batch size",
    "metrics": "metrics",
    "reference": "reference (removed pixels become)",
    "confidence": "scored confidence",
    "n_steps": "insertion / deletion steps",
    "step_size": "insertion / deletion pixels per step",
    "top_k": "top-k of the consistency IoU",
    "box_threshold": "saliency box threshold",
    "box_mode": "saliency box mode",
    "pointing_tolerance": "pointing tolerance",
    "keep_examples": "examples kept with maps",
}


# ------------------------------------------------------------------------------ configuration
def value_text(value: Any) -> str:
    """A configuration value as text: a list joined by commas, a float to 4 significant
    digits, ``None`` as a dash.

    Example:
        >>> value_text([0, 1]), value_text(2 / 3), value_text(None)
        ('0, 1', '0.6667', '–')
    """
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) if value else "–"
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def config_rows(result: EvaluationResult) -> list[tuple[str, str]]:
    """The run's settings as (label, text) rows, in :data:`CONFIG_LABELS` order."""
    config = dict(result.config)
    if result.reference_method is not None:
        config.setdefault("reference_method", result.reference_method)
    labels = {**CONFIG_LABELS, "reference_method": "reference method (paired differences)"}
    order = [k for k in labels if k in config] + [k for k in config if k not in labels]
    # a setting left at None takes the metric's own default
    return [(labels.get(k, k.replace("_", " ")),
             "default" if config[k] is None else value_text(config[k])) for k in order]  # fmt: skip


def environment_rows(date: datetime | None = None) -> list[tuple[str, str]]:
    """Versions of the package, PyTorch, Captum and Python, the platform and the date."""
    import captum

    import captum_perturbmask

    when = (date or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M %Z").strip()
    return [
        ("captum-perturbmask", captum_perturbmask.__version__),
        ("PyTorch", torch.__version__),
        ("Captum", captum.__version__),
        ("Python", platform.python_version()),
        ("platform", platform.platform(terse=True)),
        ("written", when),
    ]


def config_table(rows: Sequence[tuple[str, str]], caption: str) -> str:
    """A two-column table of (label, text) rows, each label its row's header."""
    return table([], [[Cell(k), Cell(v, "text")] for k, v in rows], caption, css="config")


# ------------------------------------------------------------------------------ tables
def number_cell(
    mean: float | None,
    ci: float | None,
    digits: int,
    css: str | None = None,
    data: dict[str, Any] | None = None,
    extra: str = "",
) -> Cell:
    """A cell ``mean ± ci`` (its text is :func:`~.format_value`'s), the interval on a line of
    its own so that tables stay narrow."""
    head, sep, tail = format_value(mean, ci, digits).partition(" ± ")
    interval = f'<span class="ci"> ± {escape(tail)}</span>' if sep else ""
    return Cell(head, css, data, interval + extra)


def _best(result: EvaluationResult, col: Column) -> set[str]:
    """Methods with the best mean of ``col`` (none when no direction is better)."""
    values = {r["method"]: r.get(col.key) for r in result.summary if r.get(col.key) is not None}
    if col.higher_is_better is None or len(values) < 2:
        return set()
    best = max(values.values()) if col.higher_is_better else min(values.values())
    return {m for m, v in values.items() if v == best}


def summary_table(result: EvaluationResult, digits: int = 3) -> str:
    """Mean ± 95% interval per method and column, the best mean in bold; every cell carries
    the exact numbers (``data-value``, ``data-ci``, ``data-n``)."""
    cols = result.present_columns()
    head = ["method", "examples", *(c.header for c in cols), "forwards / input", "s / input"]
    best = {c.key: _best(result, c) for c in cols}
    rows = []
    for r in result.summary:
        name = r["method"]
        cells = [Cell(name, data={"method": name}), Cell(r["n"], data={"value": r["n"]})]
        for c in cols:
            mean, ci = r.get(c.key), r.get(f"{c.key}_ci")
            cells.append(
                number_cell(
                    mean,
                    ci,
                    digits,
                    "best" if name in best[c.key] else None,
                    {"key": c.key, "value": mean, "ci": ci, "n": r.get(f"{c.key}_n")},
                )
            )
        fw, secs = r.get("forwards_per_input"), r.get("seconds_per_input")
        cells.append(Cell("–" if fw is None else f"{fw:g}", data={"value": fw}))
        cells.append(Cell("–" if secs is None else f"{secs:.3g}", data={"value": secs}))
        rows.append(cells)
    caption = (
        "Mean over examples ± 95% interval (1.96 standard errors; each example's value is first "
        "averaged over its seeds). ↑ higher is better, ↓ lower is better; bold: the best mean."
    )
    return table(head, rows, caption, css="summary")


def verdict(diff: float, ci: float | None, higher_is_better: bool | None) -> str:
    """``"better"``, ``"worse"`` or ``"tie"`` (the interval holds zero, or no interval, or no
    direction is better).

    Example:
        >>> verdict(0.05, 0.02, True), verdict(0.05, 0.02, False), verdict(0.01, 0.02, True)
        ('better', 'worse', 'tie')
    """
    if ci is None or higher_is_better is None or abs(diff) <= ci:
        return "tie"
    return "better" if (diff > 0) == higher_is_better else "worse"


def paired_table(result: EvaluationResult, digits: int = 3) -> str:
    """Method minus the reference method per column, mean ± 95% interval over the examples
    both have, with each difference's verdict (in words and in colour)."""
    cols = result.paired_columns()
    pairs = {(p["method"], p["metric"]): p for p in result.paired}
    rows = []
    for name in [r["method"] for r in result.summary if r["method"] != result.reference_method]:
        cells = [Cell(name, data={"method": name})]
        for c in cols:
            p = pairs.get((name, c.key))
            if p is None:
                cells.append(Cell("–", data={"key": c.key}))
                continue
            word = verdict(p["diff"], p["ci"], c.higher_is_better)
            cells.append(
                number_cell(
                    p["diff"],
                    p["ci"],
                    digits,
                    None if word == "tie" else word,
                    {"key": c.key, "value": p["diff"], "ci": p["ci"], "n": p["n"]},
                    f'<span class="verdict">{word}</span>',
                )
            )
        rows.append(cells)
    caption = (
        f"Paired differences, method minus {result.reference_method}: mean over the same "
        "examples ± 95% interval. better / worse: the interval excludes zero in that "
        "direction; tie: it holds zero."
    )
    return table(["method", *(f"Δ {c.header}" for c in cols)], rows, caption, css="paired")


def verdict_lines(result: EvaluationResult) -> list[str]:
    """One sentence per method: where it is better or worse than the reference method."""
    cols = {c.key: c for c in result.paired_columns()}
    found: dict[str, dict[str, list[str]]] = {}
    for p in result.paired:
        col = cols.get(p["metric"])
        if col is None:
            continue
        word = verdict(p["diff"], p["ci"], col.higher_is_better)
        found.setdefault(p["method"], {"better": [], "worse": [], "tie": []})[word].append(
            col.label
        )
    lines = []
    for name, words in found.items():
        parts = [f"{w} on {', '.join(words[w])}" for w in ("better", "worse") if words[w]]
        if words["tie"]:
            parts.append(f"no clear difference on {', '.join(words['tie'])}")
        lines.append(f"{name} vs {result.reference_method}: {'; '.join(parts)}.")
    return lines
