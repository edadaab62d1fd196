"""Render the screenshots of an evaluation report that the documentation shows.

A maintainer script, not a CI step: ``python docs/render_report_screenshots.py`` (from the
repository root, with the package installed and Debian's ``chromium`` on the ``PATH``:
``apt-get install -y chromium``). It evaluates the shipped classifier on held-out
digits-in-clutter images (what ``captum-perturbmask evaluate --data digits`` runs), writes the
report, renders parts of it in headless Chromium at a laptop's width and saves them, trimmed
and reduced to a palette, as ``docs/_static/report/*.png``. It takes about two minutes on two
CPU cores. ``--out DIR`` keeps the report pages there.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
TARGET = DOCS / "_static" / "report"
#: Width of the browser window, CSS pixels (a laptop screen).
WIDTH = 1280
#: The run shown: the shipped CNN on held-out digits, four methods, two seeds.
RUN = dict(n_examples=32, methods=["PerturbMask", "RISE", "GradCAM", "Occlusion"], budget=200,
           seeds=(0, 1), batch_size=16, keep_examples=4)  # fmt: skip
#: screenshot -> (report_html keywords, window height): the top of the page (settings,
#: summary, paired differences) and the view of one example.
SHOTS = {
    "report_overview.png": ({}, 1500),
    "report_example.png": ({"sections": ["examples"], "max_examples": 1}, 900),
}


def browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("no Chromium on the PATH: apt-get install -y chromium")


def screenshot(page: Path, png: Path, height: int, profile: Path) -> None:
    """``page`` rendered headless at ``WIDTH`` x ``height`` into ``png`` (no network: the
    page loads nothing, and Chromium's own background connections are off)."""
    subprocess.run(
        [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={profile}", "--hide-scrollbars",
         "--force-device-scale-factor=1", f"--window-size={WIDTH},{height}",
         f"--screenshot={png}", page.as_uri()],
        check=True, capture_output=True, timeout=180,
    )  # fmt: skip


def shrink(png: Path, target: Path) -> None:
    """Trim the blank rows below the content, keep a margin, save with a 256-colour palette."""
    from PIL import Image, ImageChops

    with Image.open(png) as img:
        rgb = img.convert("RGB")
    blank = Image.new("RGB", rgb.size, (255, 255, 255))
    box = ImageChops.difference(rgb, blank).getbbox()
    if box is not None:
        rgb = rgb.crop((0, 0, rgb.width, min(rgb.height, box[3] + 24)))
    rgb.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)


def main(argv: list[str] | None = None) -> int:
    import torch

    from captum_perturbmask.data import load_default_classifier, make_digits_clutter
    from captum_perturbmask.evaluation import evaluate
    from captum_perturbmask.report import write_report

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="keep the report pages here")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    run = dict(RUN)
    model, data = load_default_classifier(), make_digits_clutter("test", seed=0)
    result = evaluate(model, data, run.pop("methods"), indices=range(run.pop("n_examples")),
                      box_threshold=0.9, show_progress=True, **run)  # fmt: skip
    result.config["model"] = f"the shipped {result.config['model']}"
    result.config["data"] = "digits (held-out digits-in-clutter test images, with boxes)"
    TARGET.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.out or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for name, (options, height) in SHOTS.items():
            page = write_report(result, folder / name.replace(".png", ".html"),
                                title="captum-perturbmask evaluate", **options)  # fmt: skip
            raw = Path(tmp) / f"raw-{name}"
            screenshot(page, raw, height, Path(tmp) / "profile")
            shrink(raw, TARGET / name)
            print(f"wrote {TARGET / name} ({(TARGET / name).stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
