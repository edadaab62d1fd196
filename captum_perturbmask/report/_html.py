"""The pieces every report page is made of: escaped text, tables, inline figures, the page.

A page is one HTML5 document with its style sheet inline and its figures as ``data:`` PNGs,
so it opens offline, from a mail attachment or an artefact store, and loads nothing: no
script, no font, no network address. Tables have captions and ``<th>`` headers with a scope;
every figure has alternative text.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "Cell",
    "PAGE_CSS",
    "data_uri",
    "escape",
    "figure",
    "page",
    "section",
    "table",
]

#: The style of every report page: one readable column at most 72rem wide (about 1150 px),
#: figures scaled to it, tables that wrap their cells instead of widening the page.
PAGE_CSS = """
:root { color-scheme: light; --ink: #1f2328; --muted: #59636e; --line: #d1d9e0;
  --soft: #f6f8fa; --accent: #8a2be2; --good: #116329; --good-bg: #dafbe1;
  --bad: #82071e; --bad-bg: #ffebe9; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff; line-height: 1.5;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; }
header, main, footer { max-width: 72rem; margin: 0 auto; padding: 0 1.25rem; }
header { padding-top: 1.5rem; border-bottom: 1px solid var(--line); }
h1 { font-size: 1.7rem; margin: 0 0 .25rem; }
h2 { font-size: 1.3rem; margin: 2rem 0 .5rem; padding-bottom: .25rem;
  border-bottom: 1px solid var(--line); }
h3 { font-size: 1.05rem; margin: 1.5rem 0 .5rem; }
p { margin: .4rem 0 .8rem; }
.lead { color: var(--muted); margin-bottom: .6rem; }
nav ul { list-style: none; padding: 0; margin: .5rem 0 1rem; display: flex; flex-wrap: wrap;
  gap: .25rem 1.25rem; }
nav a, main a { color: var(--accent); }
.note { color: var(--muted); font-size: .9rem; }
.table-wrap { max-width: 100%; overflow-x: auto; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .9rem;
  font-variant-numeric: tabular-nums; }
caption { caption-side: top; text-align: left; color: var(--muted); padding-bottom: .35rem; }
th, td { border-bottom: 1px solid var(--line); padding: .3rem .6rem; text-align: right;
  vertical-align: top; }
td { white-space: nowrap; }
td.text { white-space: normal; }
.ci { display: block; font-size: .8em; color: var(--muted); font-weight: 400; }
th[scope="row"], td.text, th.text { text-align: left; }
thead th { background: var(--soft); border-bottom: 2px solid var(--line); }
table.config { width: 100%; }
table.config th, table.config td { padding: .15rem .6rem; text-align: left; }
table.config th { font-weight: 600; background: none; width: 40%; }
table.config td { overflow-wrap: anywhere; }
td.best { font-weight: 700; }
td.better { background: var(--good-bg); color: var(--good); }
td.worse { background: var(--bad-bg); color: var(--bad); }
td.better .ci, td.worse .ci { color: inherit; }
.verdict { display: block; font-size: .75rem; color: var(--muted); }
td.better .verdict, td.worse .verdict { color: inherit; font-weight: 600; }
figure { margin: .75rem 0 1.25rem; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: .85rem; margin-top: .3rem; }
article.example { border: 1px solid var(--line); border-radius: 6px; padding: .25rem 1rem 0;
  margin: 1rem 0 1.5rem; }
.pair { display: flex; flex-wrap: wrap; gap: 0 1.5rem; align-items: flex-start; }
.pair > * { flex: 1 1 22rem; min-width: 0; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(20rem, 1fr));
  gap: 1rem; }
.error { color: var(--bad); }
footer { color: var(--muted); font-size: .85rem; border-top: 1px solid var(--line);
  margin-top: 2rem; padding-top: .75rem; padding-bottom: 2rem; }
"""


def escape(value: object) -> str:
    """``value`` as text safe inside an element or a quoted attribute."""
    return html.escape(str(value), quote=True)


def data_uri(png: bytes) -> str:
    """A PNG as a ``data:`` address (the figure lives inside the page)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure(png: bytes, alt: str, caption: str | None = None, width: int | None = None) -> str:
    """An inline PNG figure with alternative text and an optional caption (escaped text);
    ``width``: the largest width to show it at, in CSS pixels."""
    style = f' style="max-width: min(100%, {int(width)}px)"' if width else ""
    parts = [f'<figure><img src="{data_uri(png)}" alt="{escape(alt)}"{style}>']
    if caption:
        parts.append(f"<figcaption>{escape(caption)}</figcaption>")
    parts.append("</figure>")
    return "".join(parts)


class Cell:
    """One table cell: its text, and optionally a CSS class, ``data-*`` attributes (the exact
    numbers behind the text, as ``repr``; strings as they are; ``None`` empty) and extra HTML
    after the text (trusted markup)."""

    __slots__ = ("text", "css", "data", "extra")

    def __init__(
        self,
        text: object,
        css: str | None = None,
        data: Mapping[str, object] | None = None,
        extra: str = "",
    ) -> None:
        self.text, self.css, self.data, self.extra = str(text), css, dict(data or {}), extra

    def render(self, tag: str = "td", scope: str | None = None) -> str:
        attrs = f' scope="{scope}"' if scope else ""
        if self.css:
            attrs += f' class="{escape(self.css)}"'
        for key, value in self.data.items():
            shown = "" if value is None else value if isinstance(value, str) else repr(value)
            attrs += f' data-{escape(key)}="{escape(shown)}"'
        return f"<{tag}{attrs}>{escape(self.text)}{self.extra}</{tag}>"


def table(
    head: Sequence[str],
    rows: Iterable[Sequence[Cell | str]],
    caption: str,
    css: str | None = None,
    row_headers: bool = True,
) -> str:
    """A table with a caption, column headers and (``row_headers``) each row's first cell
    as its row header."""
    css_attr = f' class="{escape(css)}"' if css else ""
    out = [f'<div class="table-wrap"><table{css_attr}>', f"<caption>{escape(caption)}</caption>"]
    if head:
        cols = [f'<th scope="col" class="text">{escape(head[0])}</th>']
        cols += [f'<th scope="col">{escape(h)}</th>' for h in head[1:]]
        out.append(f"<thead><tr>{''.join(cols)}</tr></thead>")
    out.append("<tbody>")
    for row in rows:
        cells = [c if isinstance(c, Cell) else Cell(c) for c in row]
        first = cells[0].render("th", "row") if row_headers else cells[0].render()
        out.append("<tr>" + first + "".join(c.render() for c in cells[1:]) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def section(anchor: str, title: str, body: str, level: int = 2) -> str:
    """A titled section that the page's contents can link to (``id`` = ``anchor``)."""
    return (
        f'<section id="{escape(anchor)}" aria-labelledby="{escape(anchor)}-title">'
        f'<h{level} id="{escape(anchor)}-title">{escape(title)}</h{level}>{body}</section>'
    )


def page(
    title: str,
    body: str,
    *,
    lead: str = "",
    contents: Sequence[tuple[str, str]] = (),
    footer: str = "",
) -> str:
    """The whole document: ``<head>`` with the inline style, a header (title, ``lead``, a
    list of links to the ``contents`` ``(anchor, title)``), ``body`` in ``<main>``, a footer."""
    nav = ""
    if contents:
        links = "".join(f'<li><a href="#{escape(a)}">{escape(t)}</a></li>' for a, t in contents)
        nav = f'<nav aria-label="Contents"><ul>{links}</ul></nav>'
    lead_html = f'<p class="lead">{escape(lead)}</p>' if lead else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{PAGE_CSS}</style></head><body>"
        f"<header><h1>{escape(title)}</h1>{lead_html}{nav}</header>"
        f"<main>{body}</main>"
        f"<footer>{escape(footer)}</footer>"
        "</body></html>\n"
    )
