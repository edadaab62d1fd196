""":func:`captum_perturbmask.report.explain_index_html`: the index page of a folder of
explanations."""

from __future__ import annotations

import pytest

from captum_perturbmask.report import explain_index_html
from captum_perturbmask.viz import png_bytes

from ._page import parse, table_cells


def _png() -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    fig.subplots().plot([0, 1], [1, 0])
    return png_bytes(fig, dpi=72)


def test_index_lists_every_input_and_links_its_files() -> None:
    entries = [
        {"name": "cats/tabby 1.jpg", "figure": "tabby 1/saliency.png", "target": 281,
         "label": "tabby", "predicted": 282, "predicted_label": "tiger cat",
         "confidence": 0.912345, "method": "PerturbMask",
         "files": {"map": "tabby 1/saliency.pt", "figure": "tabby 1/saliency.png"}},
        {"name": "dog.png", "figure": _png(), "target": 5},
        {"name": "broken.jpg", "error": "cannot read the image <truncated>"},
    ]  # fmt: skip
    html = explain_index_html(entries, title="Three photos", about={"model": "resnet50"})
    doc = parse(html)
    assert doc.find("title").text() == "Three photos"
    rows = table_cells(doc.by_id("inputs").find("table"))
    assert [r[0].attrs["data-name"] for r in rows] == [e["name"] for e in entries]
    assert rows[0][1].text() == "281 (tabby)" and rows[0][2].text() == "282 (tiger cat)"
    assert rows[1][2].text() == "–" and rows[0][3].text() == "0.912"
    assert rows[0][3].attrs["data-value"] == "0.912345"
    links = [a.attrs["href"] for a in rows[0][5].find_all("a")]
    assert links == ["tabby%201/saliency.pt", "tabby%201/saliency.png"]  # relative, quoted
    assert rows[2][5].text() == "cannot read the image <truncated>"  # escaped text
    assert "<truncated>" not in html
    images = doc.by_id("figures").find_all("img")
    assert [i.attrs["src"][:22] for i in images] == [
        "tabby%201/saliency.png",
        "data:image/png;base64,",
    ]
    assert all(i.attrs["alt"].startswith("Explanation of ") for i in images)
    assert "1 could not be explained" in doc.by_id("inputs").find("caption").text()
    assert doc.by_id("run")  # the about rows
    assert not doc.find_all("script") and not doc.find_all("link")
    addresses = [v for n in doc.iter() for k, v in n.attrs.items() if k in ("src", "href")]
    assert not [v for v in addresses if not v.startswith("data:") and ":" in v]


@pytest.mark.parametrize(
    "entries, error, match",
    [
        ("cat.jpg", TypeError, "sequence of mappings"),
        ([["cat.jpg"]], TypeError, r"entries\[0\]"),
        ([{"figure": "a.png"}], ValueError, "name"),
        ([{"name": "a", "colour": 1}], ValueError, "unknown keys"),
        ([{"name": "a", "figure": 3}], TypeError, "PNG bytes or a relative path"),
        ([{"name": "a", "figure": "https://example.org/a.png"}], ValueError, "relative"),
        ([{"name": "a", "figure": "/tmp/a.png"}], ValueError, "relative"),
        ([{"name": "a", "files": {"map": "file:///a.pt"}}], ValueError, "relative"),
        ([{"name": "a", "files": ["a.pt"]}], TypeError, "files"),
    ],
)
def test_bad_entries(entries, error, match) -> None:
    with pytest.raises(error, match=match):
        explain_index_html(entries)
