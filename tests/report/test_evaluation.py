""":func:`captum_perturbmask.report.write_report`: the page of a comparison or an evaluation,
read back with ``html.parser``: sections, numbers, images, no network resource."""

from __future__ import annotations

import base64
import io
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest
import torch
from PIL import Image

from captum_perturbmask.evaluation import EvaluationResult, compare, evaluate, summarize
from captum_perturbmask.evaluation.results import format_value
from captum_perturbmask.report import report_html, write_report

from ..evaluation.conftest import Boxed, methods
from ._page import Node, parse, table_cells

SECTIONS = ("configuration", "summary", "paired", "curves", "maps", "examples")


def _decoded_images(doc: Node) -> list[Image.Image]:
    """Every <img> of the page, decoded; each must be an inline PNG with alternative text."""
    images = []
    for img in doc.find_all("img"):
        assert img.attrs.get("alt", "").strip(), "an image without alternative text"
        src = img.attrs["src"]
        assert src.startswith("data:image/png;base64,"), src[:40]
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True)))
        image.load()
        assert image.width > 50 and image.height > 50
        images.append(image)
    return images


def assert_self_contained(html: str, doc: Node) -> None:
    """Nothing the page refers to lies outside it: no script, no linked style or font, no
    address in any attribute or in the style sheet."""
    assert not doc.find_all("script") and not doc.find_all("link") and not doc.find_all("iframe")
    for node in doc.iter():
        for name, value in node.attrs.items():
            if name in ("src", "href", "srcset", "action", "poster", "data"):
                assert not re.match(r"\s*(https?:)?//", value), (node.tag, name, value[:60])
                assert value.startswith(("data:image/png;base64,", "#")), (node.tag, value[:60])
    style = "".join(n.text() for n in doc.find_all("style"))
    assert "url(" not in style and "@import" not in style
    ids = [n.attrs["id"] for n in doc.iter() if "id" in n.attrs]
    assert len(ids) == len(set(ids)), "an id used twice"
    targets = {a.attrs["href"][1:] for a in doc.find_all("a") if a.attrs["href"].startswith("#")}
    assert targets <= set(ids), "a link to no element"


def assert_accessible_tables(doc: Node) -> None:
    """Every table has a caption, its column headers and row headers carry a scope."""
    tables = doc.find_all("table")
    assert tables
    for t in tables:
        assert t.find("caption").text().strip()
        for th in t.find_all("th"):
            assert th.attrs.get("scope") in ("col", "row")
    assert doc.find("html").attrs.get("lang") == "en"


def test_comparison_page(compared: EvaluationResult, tmp_path: Path) -> None:
    when = datetime(2026, 1, 2, 3, 4, tzinfo=timezone.utc)
    path = write_report(compared, tmp_path / "report.html", about={"model name": "tiny"},
                        date=when)  # fmt: skip
    html = path.read_text(encoding="utf-8")
    doc = parse(html)
    assert_self_contained(html, doc)
    assert_accessible_tables(doc)
    links = {a.attrs["href"] for a in doc.find("nav").find_all("a")}
    for anchor in SECTIONS:
        doc.by_id(anchor)
        assert f"#{anchor}" in links

    # configuration: the caller's rows, the run's settings, the versions and the date
    rows = {
        cells[0].text(): cells[1].text()
        for t in doc.by_id("configuration").find_all("table")
        for cells in table_cells(t)
    }
    assert rows["model name"] == "tiny"
    assert rows["methods"] == "PerturbMask, noise, pixels" and rows["seeds"] == "0, 1"
    assert rows["metrics"] == "insertion, deletion, iou, pointing"
    assert rows["reference (removed pixels become)"] == "default"
    assert rows["reference method (paired differences)"] == "PerturbMask"
    assert rows["examples evaluated"] == "3" and rows["model"].startswith("Sequential (")
    assert rows["PyTorch"] == torch.__version__ and rows["written"] == "2026-01-02 03:04 UTC"

    # summary: every number is the result's, its text the table's format
    summary = doc.by_id("summary").find("table")
    seen = 0
    for cells in table_cells(summary):
        method = cells[0].attrs["data-method"]
        for cell in cells:
            key = cell.attrs.get("data-key")
            if key is None:
                continue
            row = compared[method]
            value, ci = row[key], row[f"{key}_ci"]
            assert cell.attrs["data-value"] == ("" if value is None else repr(value))
            assert cell.attrs["data-ci"] == ("" if ci is None else repr(ci))
            assert cell.text() == format_value(value, ci)
            assert ("best" in cell.attrs.get("class", "")) == (
                value is not None
                and value
                == (max if key != "deletion" else min)(
                    r[key] for r in compared.summary if r[key] is not None
                )
                and sum(r[key] is not None for r in compared.summary) > 1
            )
            seen += 1
    assert seen == 3 * 6  # four metrics and two consistency columns (a dash for "pixels")

    # paired differences against PerturbMask, with their verdicts
    pairs = {(p["method"], p["metric"]): p for p in compared.paired}
    paired = doc.by_id("paired").find("table")
    n = 0
    for cells in table_cells(paired):
        method = cells[0].attrs["data-method"]
        assert method != "PerturbMask"
        for cell in cells[1:]:
            if "data-value" not in cell.attrs:
                continue
            p = pairs[(method, cell.attrs["data-key"])]
            assert float(cell.attrs["data-value"]) == p["diff"]
            assert cell.text().startswith(format_value(p["diff"], p["ci"]))
            assert cell.text().endswith(("better", "worse", "tie"))
            n += 1
    assert n == len(pairs)
    assert len(doc.by_id("paired").find("ul").find_all("li")) == 2  # one sentence per method

    # figures: the curves, the maps grid (3 examples), one maps and one curves figure each
    images = _decoded_images(doc)
    assert len(images) == 1 + 1 + 2 * 3
    articles = doc.by_id("examples").find_all("article")
    assert [a.attrs["id"] for a in articles] == ["example-0", "example-1", "example-2"]
    assert "class 1" in doc.by_id("example-1-title").text()

    # each example's scores are its first-seed records
    runs = compared.example_runs([0, 1, 2])
    for a, index in zip(articles, range(3), strict=True):
        for cells in table_cells(a.find("table")):
            method = cells[0].attrs["data-method"]
            for cell in cells[1:]:
                record = runs[index][method]
                assert record["seed"] == 0
                assert cell.attrs["data-value"] == repr(record[cell.attrs["data-key"]])


def test_an_evaluation_shows_the_kept_examples(tiny, tmp_path: Path) -> None:
    """evaluate(keep_examples=3) on 6 examples: the grid and the views show those 3, and the
    page says how many of how many."""
    result = evaluate(tiny, Boxed(6), methods(tiny), seeds=(0,), batch_size=4, n_steps=8,
                      out=tmp_path / "run", keep_examples=3, show_progress=False)  # fmt: skip
    html = report_html(result, max_examples=2, grid_examples=3)
    doc = parse(html)
    assert_self_contained(html, doc)
    views = doc.by_id("examples").find_all("article")
    assert [v.attrs["id"] for v in views] == ["example-0", "example-1"]
    intro = doc.by_id("examples").find("p").text()
    assert "first 2 of the 6 examples evaluated (3 kept)" in intro
    assert "first 3 of the 6" in doc.by_id("maps").find("figcaption").text()
    assert len(_decoded_images(doc)) == 1 + 1 + 2 * 2
    # the odd examples have no target in the data: the model's prediction is shown
    assert "class" in doc.by_id("example-1-title").text()


def test_a_result_without_maps_has_its_tables(compared: EvaluationResult) -> None:
    rebuilt = summarize(compared.records(), keep_records=True)
    doc = parse(report_html(rebuilt))
    for anchor in ("summary", "paired", "curves"):
        doc.by_id(anchor)
    assert "No maps were kept" in doc.by_id("maps").text()
    assert not [n for n in doc.iter() if n.attrs.get("id") == "examples"]
    # given inputs and maps, it draws them
    ex = compared.examples
    doc = parse(report_html(rebuilt, inputs=ex.inputs, maps=compared.maps, boxes=ex.boxes))
    assert len(doc.by_id("examples").find_all("article")) == 3


def test_sections_select_the_parts(compared: EvaluationResult) -> None:
    doc = parse(report_html(compared, sections=("summary", "examples"), max_examples=1))
    ids = {n.attrs["id"] for n in doc.iter() if "id" in n.attrs}
    assert {"summary", "examples", "example-0"} <= ids
    assert not ids & {"configuration", "paired", "curves", "maps", "example-1"}
    assert len(_decoded_images(doc)) == 2  # one example: its maps and its curves


def test_several_results_one_part_each(compared: EvaluationResult, tiny) -> None:
    series = torch.randn(2, 1, 24, generator=torch.Generator().manual_seed(0))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(24, 2)).eval()
    on_series = compare(model, series, ["Occlusion"], target=[0, 1], budget=4, seeds=(0,),
                        boxes=torch.tensor([[2.0, 8.0], [10.0, 20.0]]))  # fmt: skip
    html = report_html({"Images": compared, "Series A": on_series},
                       class_names={"Series A": ["left", "right"]})  # fmt: skip
    doc = parse(html)
    assert_self_contained(html, doc)
    for anchor in ("environment", "images", "series-a", "images-summary", "series-a-maps"):
        doc.by_id(anchor)
    assert "class 1 (right)" in doc.by_id("series-a-example-1-title").text()
    assert "images-paired" in html and "series-a-paired" not in html  # one method: no pairs
    _decoded_images(doc)


def test_bad_arguments(compared: EvaluationResult, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="EvaluationResult"):
        report_html({"a": 1})
    with pytest.raises(TypeError, match="EvaluationResult"):
        write_report("result", tmp_path / "r.html")
    with pytest.raises(ValueError, match="empty"):
        report_html({})
    with pytest.raises(ValueError, match="single result"):
        report_html({"a": compared}, inputs=compared.examples.inputs)
    with pytest.raises(ValueError, match="max_examples"):
        report_html(compared, max_examples=-1)
    with pytest.raises(ValueError, match=r"maps\['x'\]"):
        report_html(compared, maps={"x": torch.zeros(2, 3, 8, 8)})
    with pytest.raises(TypeError, match="about"):
        report_html(compared, about=["model"])
    with pytest.raises(TypeError, match="class_names"):
        report_html(compared, class_names="cat")
    with pytest.raises(ValueError, match="sections"):
        report_html(compared, sections=["summary", "appendix"])
    with pytest.raises(ValueError, match="sections"):
        report_html(compared, sections=[])
    assert not list(tmp_path.iterdir())  # nothing written on a refused call
