"""The index page of a folder of explanations (``captum-perturbmask explain`` on several
inputs): a table of every input and a gallery of their figures."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from captum_perturbmask.report._html import Cell, data_uri, escape, page, section, table

__all__ = ["explain_index_html"]

_KEYS = {
    "name", "figure", "target", "label", "predicted", "predicted_label", "confidence", "method",
    "files", "error",
}  # fmt: skip
#: The columns of the inputs table.
HEAD = ["input", "explained class", "predicted class", "confidence", "method", "files"]
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:|^/|^\\")


def _relative(path: object, where: str) -> str:
    """A relative path as a link target (quoted); addresses and absolute paths are refused."""
    text = str(path).replace("\\", "/") if isinstance(path, str) else None
    if text is None or not text or _SCHEME.match(str(path)):
        raise ValueError(
            f"{where} must be a path relative to the index page (e.g. 'cat/saliency.png'), "
            f"got {path!r}."
        )
    return quote(text)


def _entry(entry: object, i: int) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        raise TypeError(f"`entries[{i}]` must be a mapping, got {type(entry).__name__}.")
    unknown = set(entry) - _KEYS
    if unknown:
        raise ValueError(
            f"`entries[{i}]` has unknown keys {sorted(unknown)}; known: {sorted(_KEYS)}."
        )
    if not isinstance(entry.get("name"), str) or not entry["name"]:
        raise ValueError(f"`entries[{i}]['name']` must be a non-empty string.")
    fig = entry.get("figure")
    if fig is not None and not isinstance(fig, (bytes, str)):
        raise TypeError(
            f"`entries[{i}]['figure']` must be PNG bytes or a relative path, got "
            f"{type(fig).__name__}."
        )
    files = entry.get("files") or {}
    if not isinstance(files, Mapping):
        raise TypeError(f"`entries[{i}]['files']` must be a mapping label -> relative path.")
    return dict(entry)


def _class(entry: Mapping[str, Any], key: str = "target", name: str = "label") -> str:
    """``"281 (tabby)"``: an entry's class and its name, either one alone when only it is known."""
    target, label = entry.get(key), entry.get(name)
    if target is None:
        return "" if label is None else str(label)
    return f"{target}" + ("" if label is None else f" ({label})")


def explain_index_html(
    entries: Sequence[Mapping[str, Any]],
    *,
    title: str = "Explanations",
    about: Mapping[str, Any] | None = None,
) -> str:
    """The index page of a folder of explanations, one entry per explained input.

    ``(out / "index.html").write_text(explain_index_html(entries), encoding="utf-8")``
    writes a page that lists every input (its class, the model's confidence, the method, links
    to its files) above a gallery of the figures. A figure given as bytes is embedded; one given
    as a path is linked (relative to the page, so the folder can move). The page carries its
    style inline and loads nothing from the network.

    Args:
        entries: One mapping per input: ``name`` (required: what was explained, e.g. its file
            name), ``figure`` (PNG bytes, or a path relative to the page), ``target`` (the
            explained class), ``label`` (its name), ``predicted`` and ``predicted_label``
            (the model's class, when it differs from the explained one or is worth showing),
            ``confidence`` (the model's, in :math:`[0, 1]`), ``method``, ``files`` (label ->
            relative path: links) and ``error`` (why this input has no explanation, shown
            instead of its figure).
        title: Title of the page.
        about: Rows label -> value describing the run (model, weights, budget, ...).

    Returns:
        The HTML document.

    Raises:
        TypeError: ``entries`` is not a sequence of mappings, a figure neither bytes nor a
            path, ``about`` not a mapping.
        ValueError: an entry without a name, with unknown keys, or a path that is an address
            or absolute.

    Example:
        >>> page = explain_index_html(
        ...     [{"name": "cat.jpg", "figure": "cat/saliency.png", "target": 281,
        ...       "label": "tabby", "confidence": 0.91, "method": "PerturbMask",
        ...       "files": {"map": "cat/saliency.pt"}},
        ...      {"name": "broken.jpg", "error": "cannot read the image"}],
        ...     about={"model": "resnet50"})
        >>> 'src="cat/saliency.png"' in page, "cannot read the image" in page
        (True, True)
    """
    if isinstance(entries, (str, bytes, Mapping)) or not isinstance(entries, Sequence):
        raise TypeError(f"`entries` must be a sequence of mappings, got {type(entries).__name__}.")
    items = [_entry(e, i) for i, e in enumerate(entries)]
    if about is not None and not isinstance(about, Mapping):
        raise TypeError(f"`about` must be a mapping label -> value, got {type(about).__name__}.")
    body = []
    if about:
        rows = [[Cell(k), Cell(v, "text")] for k, v in about.items()]
        body.append(section("run", "Run", table([], rows, "The settings of the run.", "config")))
    rows, cards = [], []
    for i, e in enumerate(items):
        anchor = f"input-{i}"
        links = " ".join(
            f'<a href="{_relative(p, f"`entries[{i}][files][{k!r}]`")}">{escape(k)}</a>'
            for k, p in (e.get("files") or {}).items()
        )
        conf = e.get("confidence")
        if e.get("error"):
            status = Cell(e["error"], "error text")
        else:
            status = Cell("", "text", extra=links)
        rows.append(
            [
                Cell(
                    "",
                    data={"name": e["name"]},
                    extra=f'<a href="#{anchor}">{escape(e["name"])}</a>',
                ),
                Cell(_class(e) or "–", "text"),
                Cell(_class(e, "predicted", "predicted_label") or "–", "text"),
                Cell("–" if conf is None else f"{float(conf):.3f}", data={"value": conf}),
                Cell(e.get("method") or "–", "text"),
                status,
            ]
        )
        cards.append(_card(e, i, anchor))
    caption = f"{len(items)} input{'s' if len(items) != 1 else ''}."
    failed = sum(1 for e in items if e.get("error"))
    if failed:
        caption += f" {failed} could not be explained (their reason is shown)."
    body.append(
        section(
            "inputs",
            "Inputs",
            table(HEAD, rows, caption),
        )
    )
    body.append(section("figures", "Figures", f'<div class="gallery">{"".join(cards)}</div>'))
    return page(
        title,
        "".join(body),
        lead=caption,
        contents=[("inputs", "Inputs"), ("figures", "Figures")],
        footer="Written by captum-perturbmask explain.",
    )


def _card(e: Mapping[str, Any], i: int, anchor: str) -> str:
    """One input's figure (or its error) with a caption."""
    name = escape(e["name"])
    what = ", ".join(p for p in (e.get("method"), _class(e) and f"class {_class(e)}") if p)
    alt = escape(f"Explanation of {e['name']}" + (f": {what}" if what else ""))
    fig = e.get("figure")
    if e.get("error"):
        inner = f'<p class="error">{escape(e["error"])}</p>'
    elif isinstance(fig, bytes):
        inner = f'<img src="{data_uri(fig)}" alt="{alt}">'
    elif isinstance(fig, str):
        src = _relative(fig, f"`entries[{i}]['figure']`")
        inner = f'<img src="{src}" alt="{alt}" loading="lazy">'
    else:
        inner = '<p class="note">No figure.</p>'
    caption = name + (f" — {escape(what)}" if what else "")
    return f'<figure id="{anchor}">{inner}<figcaption>{caption}</figcaption></figure>'
