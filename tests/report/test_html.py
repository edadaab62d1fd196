"""The page pieces, :mod:`captum_perturbmask.report._html`: escaping, tables, figures."""

from __future__ import annotations

from captum_perturbmask.report._html import Cell, data_uri, figure, page, section, table

from ._page import parse, table_cells


def test_text_is_escaped_and_numbers_kept_exact() -> None:
    cell = Cell("<b>&", "best", {"value": 1 / 3, "name": 'a"b', "none": None}, "<i>x</i>")
    html = cell.render()
    assert html.startswith('<td class="best" data-value="0.3333333333333333"')
    assert 'data-name="a&quot;b"' in html and 'data-none=""' in html
    assert "&lt;b&gt;&amp;<i>x</i>" in html  # the text escaped, the extra markup kept


def test_table_headers_caption_and_row_headers() -> None:
    doc = parse(table(["method", "score"], [["a", Cell("0.5")], ["b <c>", "0.25"]], "Cap <x>"))
    assert doc.find("caption").text() == "Cap <x>"
    assert [th.attrs["scope"] for th in doc.find("thead").find_all("th")] == ["col", "col"]
    rows = table_cells(doc)
    assert [r[0].tag for r in rows] == ["th", "th"] and rows[1][0].attrs["scope"] == "row"
    assert rows[1][0].text() == "b <c>" and rows[1][1].text() == "0.25"


def test_page_figure_and_sections() -> None:
    png = b"\x89PNG\r\n\x1a\nfake"
    body = section("one", "One & two", figure(png, 'alt "text"', "A caption", width=300))
    html = page("Title", body, lead="lead", contents=[("one", "One")], footer="foot")
    doc = parse(html)
    assert html.startswith("<!DOCTYPE html>") and doc.find("html").attrs["lang"] == "en"
    assert doc.find("meta", charset="utf-8") and doc.find("style")
    assert doc.find("nav").find("a").attrs["href"] == "#one"
    assert doc.by_id("one").attrs["aria-labelledby"] == "one-title"
    assert doc.by_id("one-title").text() == "One & two"
    img = doc.find("img")
    assert img.attrs["src"] == data_uri(png) and img.attrs["alt"] == 'alt "text"'
    assert "300px" in img.attrs["style"] and doc.find("figcaption").text() == "A caption"
    assert doc.find("footer").text() == "foot"
