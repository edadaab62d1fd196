"""``captum-perturbmask explain``: saliency maps of images (one file, folders, glob patterns)
with any classifier :func:`~captum_perturbmask.loaders.load_model` loads.

Each image is resized with its aspect ratio kept (never cropped; ``--pad`` fits it into a
square instead), the model's normalisation is its first layer (so the map lives in pixel
space), a method of the registry (:data:`~captum_perturbmask.evaluation.METHODS`) explains up
to ``--batch-size`` images of the same input size per call, and each map is resized back to
its image's own :math:`H \\times W`.

Output folder (``--out``), written whole or not at all (staged in a hidden folder, moved into
place when every image is done):

* one image file given (``explain photo.jpg``): ``saliency.png`` (the figure) and
  ``saliency.pt`` (the map, an :math:`(H, W)` float tensor in the image's pixels);
* several images (several files, a folder - its subfolders too - or a glob pattern):
  ``figures/NAME.png`` and ``maps/NAME.pt`` per image (``NAME``: the image's path relative to
  the images' common folder, ``/`` as ``__``, without its suffix), ``index.html`` (a page
  linking every figure, with the explained and predicted class and the confidence) and
  ``index.json`` (the same as data: a list of ``{"image", "figure", "map", "target",
  "target_name", "predicted", "predicted_name", "confidence", "method", "budget", "seed",
  "status", "error"}``, ``status`` ``"ok"`` or ``"failed"`` with ``--skip-errors``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from captum_perturbmask.cli._common import (
    MAX_BATCH,
    MAX_SIZE,
    MIN_SIZE,
    CLIError,
    StagedFolder,
    check_targets,
    file_path,
    first_sentence,
    fit_class_names,
    int_range,
    load_cli_model,
    loader_errors,
    prepare_out,
    say,
)

if TYPE_CHECKING:
    from torch import Tensor

#: The fill of ``--pad`` when the model has no normalisation layer (mid grey).
PAD_FILL = (0.5, 0.5, 0.5)


# ------------------------------------------------------------------------------------------
# Images
# ------------------------------------------------------------------------------------------
def resized_size(height: int, width: int, size: int, pad: bool) -> tuple[int, int]:
    """The model's input size for an image: the shorter side ``size`` (the longer one at most
    :data:`~captum_perturbmask.cli.MAX_SIZE`), or with ``pad`` the longer side ``size``."""
    if pad:
        scale = size / max(height, width)
    else:
        scale = min(size / min(height, width), MAX_SIZE / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def preprocess(
    image: Tensor, size: int, pad: bool, fill: tuple[float, ...] = PAD_FILL
) -> tuple[Tensor, tuple[int, int, int, int]]:
    """Resize (aspect ratio kept, antialiased) and, with ``pad``, centre in a square filled with
    ``fill`` (the normalisation mean); returns :math:`(1, 3, h, w)` in :math:`[0, 1]` and the
    image's region ``(top, left, height, width)`` in it."""
    import torch
    from torchvision.transforms.v2 import functional as TF

    h, w = resized_size(image.shape[1], image.shape[2], size, pad)
    x = TF.to_dtype(TF.resize(image, [h, w], antialias=True), torch.float32, scale=True)
    if not pad:
        return x.unsqueeze(0), (0, 0, h, w)
    canvas = torch.tensor(fill, dtype=torch.float32).view(3, 1, 1).repeat(1, size, size)
    top, left = (size - h) // 2, (size - w) // 2
    canvas[:, top : top + h, left : left + w] = x
    return canvas.unsqueeze(0), (top, left, h, w)


def _check_input_size(spec: Any, image: Tensor, args: argparse.Namespace) -> None:
    """Refuse an input smaller than the architecture takes; say which --size would do."""
    from captum_perturbmask.loaders.models import min_input_size

    minimum = min_input_size(spec)
    if minimum is None:
        return

    def model_input(size: int) -> tuple[int, int]:
        return (size, size) if args.pad else resized_size(*image.shape[1:], size, False)

    h, w = model_input(args.size)
    if h >= minimum[0] and w >= minimum[1]:
        return
    low, high = args.size + 1, MAX_SIZE
    top_h, top_w = model_input(high)
    if top_h < minimum[0] or top_w < minimum[1]:
        raise CLIError(
            f"{spec} needs inputs of at least {minimum[0]}x{minimum[1]} pixels, but this "
            f"image's aspect ratio gives {top_h}x{top_w} at most; crop it or pass --pad"
        )
    while low < high:  # the smallest --size that fits
        mid = (low + high) // 2
        mh, mw = model_input(mid)
        low, high = (mid + 1, high) if mh < minimum[0] or mw < minimum[1] else (low, mid)
    raise CLIError(
        f"{spec} needs inputs of at least {minimum[0]}x{minimum[1]} pixels, the model's input "
        f"would be {h}x{w}: pass --size {low} or more"
    )


def output_names(paths: list[Path]) -> list[str]:
    """A distinct file name stem per image: its path relative to the images' common folder,
    ``/`` as ``__``, without its suffix (with it, ``.`` as ``_``, where two would clash).

    Example:
        >>> output_names([Path("a/cat/1.png"), Path("a/dog/1.png"), Path("a/dog/1.jpg")])
        ['cat__1', 'dog__1_png', 'dog__1_jpg']
    """
    parents = [os.path.abspath(p.parent) for p in paths]
    root = os.path.commonpath(parents) if parents else ""
    rel = [Path(os.path.relpath(os.path.abspath(p), root)).as_posix() for p in paths]
    stems = [r.rsplit(".", 1)[0] if "." in Path(r).name else r for r in rel]
    clash = {s for s in stems if stems.count(s) > 1}
    names = [(r.replace(".", "_") if s in clash else s) for r, s in zip(rel, stems, strict=True)]
    return [n.replace("/", "__") for n in names]


# ------------------------------------------------------------------------------------------
# The command
# ------------------------------------------------------------------------------------------
def add_parser(subparsers: Any, parents: Callable[..., list[argparse.ArgumentParser]]) -> None:
    """The ``explain`` subcommand."""
    explain = subparsers.add_parser(
        "explain",
        help="explain images with any classifier (torchvision, torch.export, TorchScript, "
        "module:factory, timm, Hugging Face)",
        description="Explain images (files, folders, glob patterns) with a classifier and a "
        "saliency method of the registry. One image: saliency.png (figure) and saliency.pt "
        "(the (H, W) map, in the image's pixels) in --out; several: figures/*.png, maps/*.pt, "
        "index.html and index.json. Images are resized with their aspect ratio kept, never "
        "cropped.",
        parents=parents(
            "--model", "--weights", "--num-classes", "--class-names", "--normalize", "--budget",
            "--seed", "--device", "--threads", "--skip-errors", "--out",
            model={
                "default": "resnet50",
                "metavar": "MODEL",
                "help": "the classifier (default resnet50): a torchvision name, a .pt2 "
                "(torch.export) or TorchScript file, package.module:factory, timm:NAME or "
                "hf:FOLDER",
            },
        ),
    )  # fmt: skip
    explain.add_argument(
        "images",
        nargs="+",
        type=file_path,
        metavar="IMAGE",
        help="image files (PNG, JPEG, ...), folders of images or glob patterns (quoted, so "
        "that the shell leaves the stars to the command)",
    )
    explain.add_argument(
        "--target",
        default=None,
        metavar="K",
        help="class to explain, an index or a class name (default: each image's predicted class)",
    )
    explain.add_argument(
        "--method",
        type=str.lower,
        default="perturbmask",
        metavar="METHOD",
        help="a registered method for images, any case: perturbmask (default), rise, gradcam, "
        "lime, occlusion, ... (a name that is not registered lists those that are)",
    )
    explain.add_argument(
        "--size",
        type=int_range(MIN_SIZE, MAX_SIZE),
        default=224,
        help="shorter image side in pixels after resizing, aspect ratio kept (default 224; "
        f"the longer side is capped at {MAX_SIZE})",
    )
    explain.add_argument(
        "--pad",
        action="store_true",
        help="fit the whole image into a --size x --size square, padded with the "
        "normalisation mean (for models with a fixed square input, e.g. vit_b_16)",
    )
    explain.add_argument(
        "--batch-size",
        type=int_range(1, MAX_BATCH),
        default=8,
        help="images explained together, per call of the method (those of the same input "
        "size; default 8)",
    )
    explain.add_argument(
        "--forward-batch-size",
        type=int_range(1, MAX_BATCH),
        default=32,
        metavar="ROWS",
        help="rows per forward call of the model: memory, not the result (default 32)",
    )
    explain.set_defaults(command="explain")


def _normalization(model: Any) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """Mean and std of the model's first layer when it is a ``Normalize`` of three channels."""
    from torch import nn

    from captum_perturbmask.loaders.wrappers import Normalize

    first = model[0] if isinstance(model, nn.Sequential) and len(model) else None
    if isinstance(first, Normalize) and first.mean.numel() == 3:
        return (
            tuple(round(float(v), 6) for v in first.mean.flatten()),
            tuple(round(float(v), 6) for v in first.std.flatten()),
        )
    return None


def _target(text: str | None, names: list[str] | None, classes: int) -> int | None:
    """``--target`` as a class index (a name is looked up in the class names)."""
    if text is None:
        return None
    try:
        target = int(text, 10)
    except ValueError:
        if names and text in names:
            return names.index(text)
        known = "" if not names else f" (class names: {', '.join(names[:5])}, ...)"
        raise CLIError(
            f"--target {text!r} is neither a class index nor a class name{known}"
        ) from None
    if not 0 <= target < classes:
        raise CLIError(
            f"--target {target} is out of range: the model has {classes} classes (0..{classes - 1})"
        )
    return target


class _Item:
    """One image on its way: its pixels, model input, region in it, and the result."""

    def __init__(self, index: int, path: Path, name: str) -> None:
        self.index, self.path, self.name = index, path, name
        self.image: Any = None
        self.x: Any = None
        self.region = (0, 0, 0, 0)
        self.record: dict[str, Any] = {"image": str(path), "status": "ok", "error": None}


def run(args: argparse.Namespace) -> int:
    """Explain the images; see :func:`add_parser` for the arguments."""
    import torch

    from captum_perturbmask.evaluation import METHODS
    from captum_perturbmask.loaders import LoadError
    from captum_perturbmask.loaders.images import find_images, load_image
    from captum_perturbmask.loaders.models import probe_model

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise CLIError(f"--out {args.out} exists and is not a directory")
    usable = {n.lower(): n for n, m in METHODS.items() if "images" in m.data}
    if args.method not in usable:
        raise CLIError(
            f"--method {args.method} is not a registered method for images; choose from "
            f"{', '.join(usable)}"
        )
    method = usable[args.method]
    with loader_errors():
        paths = find_images(args.images)
    single = len(args.images) == 1 and Path(args.images[0]).is_file()
    items = [
        _Item(i, p, n) for i, (p, n) in enumerate(zip(paths, output_names(paths), strict=True))
    ]
    first = items[0]
    with loader_errors():
        first.image = load_image(first.path) if single else None
    model, names = load_cli_model(args, args.model)
    stats = _normalization(model)
    fill = stats[0] if stats else PAD_FILL
    device = args.device or torch.device("cpu")

    def prepare(item: _Item) -> None:
        if item.image is None:
            with loader_errors():
                item.image = load_image(item.path)
        _check_input_size(args.model, item.image, args)
        x, item.region = preprocess(item.image, args.size, args.pad, fill)
        item.x = x.to(device)

    def readable(item: _Item) -> bool:
        try:
            prepare(item)
        except CLIError as err:
            if single:
                raise
            if not args.skip_errors:
                raise CLIError(f"{err}; --skip-errors records such images and goes on") from None
            item.record.update(status="failed", error=str(err))
            say(f"skipped {item.path}: {err}")
            return False
        return True

    # the first readable image tells the model's output (and checks that it runs)
    probe_item = next((item for item in items if readable(item)), None)
    if probe_item is None:
        raise CLIError(f"none of the {len(items)} images could be read; the first: "
                       f"{items[0].record['error']}")  # fmt: skip
    try:
        logits = probe_model(model, probe_item.x, str(args.model))
    except LoadError as err:
        if "out of memory" in err.detail:
            raise CLIError(
                f"out of memory running {args.model} on a {probe_item.x.shape[2]}x"
                f"{probe_item.x.shape[3]} image; pass a smaller --size"
            ) from None
        with loader_errors():
            raise
    classes = logits.shape[1]
    names = fit_class_names(names, classes, args)
    target = _target(args.target, names, classes)

    created = not Path(args.out).exists()
    out = prepare_out(args.out)
    layout = ["saliency.png", "saliency.pt"] if single else ["index.html", "index.json"]
    check_targets([out / name for name in layout])
    if single:
        _describe(first, stats, args)
    settings = dict(model=model, method=method, target=target, names=names, args=args)
    start = time.perf_counter()
    rows = 0
    with StagedFolder(out, created) as staged:
        for batch in _batches(items, readable, args):
            rows += _explain_batch(batch, staged, single, settings)
        if not single:
            staged.add("index.html", index_html([i.record for i in items], method, args))
            staged.add("index.json", json.dumps([i.record for i in items], indent=1) + "\n")
        written = staged.commit()
    seconds = time.perf_counter() - start
    failed = [i for i in items if i.record["status"] != "ok"]
    if single:
        record = first.record
        label = f" ({record['target_name']})" if record["target_name"] else ""
        print(f"target: {record['target']}{label}")
        print(f"confidence: {record['confidence']:.4f}")
        print(f"wrote {written[0]} and {written[1]} ({rows} forward passes, {seconds:.1f} s)")
    else:
        print(
            f"wrote {len(items) - len(failed)} figures and maps, index.html and index.json to "
            f"{out} ({rows} forward passes, {seconds:.1f} s)"
            + (f"; {len(failed)} images failed (see index.json)" if failed else "")
        )
    return 0


def _describe(item: _Item, stats: Any, args: argparse.Namespace) -> None:
    """The one-image preprocessing line."""
    height, width = item.image.shape[1:]
    top, left, h, w = item.region
    padded = (
        f", padded to {item.x.shape[2]}x{item.x.shape[3]} with the mean colour" if args.pad else ""
    )
    norm = (
        f"normalised with mean {stats[0]} and std {stats[1]} as the model's first layer"
        if stats
        else "not normalised (the model takes pixels in [0, 1])"
    )
    print(
        f"preprocessing: resized {height}x{width} -> {h}x{w} (antialiased; aspect ratio kept, "
        f"nothing cropped){padded}; {norm}; the map is resized back to {height}x{width}"
    )


def _batches(
    items: list[_Item], readable: Callable[[_Item], bool], args: argparse.Namespace
) -> Iterator[list[_Item]]:
    """Consecutive readable images of the same model input size, ``--batch-size`` at most."""
    batch: list[_Item] = []
    for item in items:
        if item.record["status"] != "ok":
            continue
        if item.x is None and not readable(item):
            continue
        if batch and (len(batch) == args.batch_size or batch[0].x.shape != item.x.shape):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def _explain_batch(
    batch: list[_Item], staged: StagedFolder, single: bool, settings: dict[str, Any]
) -> int:
    """Explain one batch, stage its figures and maps; returns the forward rows it took."""
    import torch

    from captum_perturbmask._core.forward import CountForwards
    from captum_perturbmask.evaluation import default_methods
    from captum_perturbmask.evaluation.scoring import derive_seed

    model, method, names, args = (settings[k] for k in ("model", "method", "names", "args"))
    x = torch.cat([item.x for item in batch])
    try:
        with torch.no_grad():
            probs = torch.softmax(model(x).double(), 1)
        predicted = probs.argmax(1)
        target = predicted if settings["target"] is None else torch.full_like(
            predicted, settings["target"])  # fmt: skip
        try:
            fn = default_methods(
                model, x, [method], budget=args.budget, forward_batch_size=args.forward_batch_size
            )[method]
        except ValueError as err:
            raise CLIError(f"--method {args.method} cannot explain {args.model}: {err}") from None
        if single:
            label = f" ({names[int(target[0])]})" if names else ""
            say(
                f"explaining class {int(target[0])}{label} of {args.model} with {method} "
                f"({args.budget} forward passes, {x.shape[2]}x{x.shape[3]} input)"
            )
        with CountForwards(model) as counter:
            attr = fn(x, target, derive_seed(args.seed, batch[0].index))
        attr = attr.detach().float()
        if not bool(torch.isfinite(attr).all()):
            raise CLIError(f"{method} returned NaN or infinite values for {batch[0].path}")
    except CLIError as err:
        if not args.skip_errors:
            raise
        for item in batch:
            item.record.update(status="failed", error=str(err))
        return 0
    except (RuntimeError, ValueError, AssertionError) as err:  # the model failed on a batch
        text = first_sentence(err)
        if "alloc" in text.lower() or "memory" in text.lower():
            raise CLIError(
                f"out of memory running {args.model} on {x.shape[2]}x{x.shape[3]} inputs; pass "
                "a smaller --size or --batch-size"
            ) from None
        message = f"{args.model} failed on {batch[0].path}: {text}"
        if not args.skip_errors:
            raise CLIError(message) from None
        for item in batch:
            item.record.update(status="failed", error=message)
        return 0
    for i, item in enumerate(batch):
        _stage_item(item, attr[i], int(target[i]), int(predicted[i]), float(probs[i, target[i]]),
                    staged, single, settings)  # fmt: skip
    return counter.rows


def _stage_item(
    item: _Item,
    attr: Tensor,
    target: int,
    predicted: int,
    confidence: float,
    staged: StagedFolder,
    single: bool,
    settings: dict[str, Any],
) -> None:
    """The map in the image's own pixels, its figure, and its record."""
    import torch
    import torch.nn.functional as F

    from captum_perturbmask import viz

    names, args, method = settings["names"], settings["args"], settings["method"]
    height, width = item.image.shape[1:]
    top, left, h, w = item.region
    saliency = attr.mean(0)[top : top + h, left : left + w]  # channels share the mask
    saliency = F.interpolate(saliency[None, None], size=(height, width), mode="bilinear",
                             antialias=True)[0, 0].cpu().contiguous()  # fmt: skip
    fig = viz.plot_explanation(
        item.image, saliency, target=target, class_names=names, confidence=confidence,
        method=method,
    )  # fmt: skip
    buffer = io.BytesIO()
    torch.save(saliency, buffer)
    figure, map_file = (
        ("saliency.png", "saliency.pt")
        if single
        else (f"figures/{item.name}.png", f"maps/{item.name}.pt")
    )
    staged.add(figure, viz.png_bytes(fig))
    staged.add(map_file, buffer.getvalue())
    item.record.update(
        figure=figure, map=map_file, target=target, target_name=names[target] if names else None,
        predicted=predicted, predicted_name=names[predicted] if names else None,
        confidence=round(confidence, 6), method=method, budget=args.budget, seed=args.seed,
    )  # fmt: skip
    item.image = item.x = None  # free the pixels
    if not single:
        label = f" ({names[target]})" if names else ""
        say(f"{item.path}: class {target}{label}, p={confidence:.4f} -> {figure}")


def index_html(records: list[dict[str, Any]], method: str, args: argparse.Namespace) -> str:
    """The self-contained index page (:func:`~captum_perturbmask.report.explain_index_html`):
    one row per image, linking its figure and map.

    Example:
        >>> page = index_html([{"image": "a.png", "status": "failed", "error": "unreadable"}],
        ...                   "RISE", argparse.Namespace(model="resnet18", budget=8, seed=0))
        >>> "unreadable" in page and page.startswith("<!DOCTYPE html>")
        True
    """
    from captum_perturbmask.report import explain_index_html

    entries = [
        {"name": r["image"], "error": f"failed: {r['error']}"} if r["status"] != "ok" else {
            "name": r["image"], "figure": r["figure"], "target": r["target"],
            "label": r["target_name"], "predicted": r["predicted"],
            "predicted_label": r["predicted_name"], "confidence": r["confidence"],
            "method": r["method"], "files": {"figure": r["figure"], "map (.pt)": r["map"]},
        }
        for r in records
    ]  # fmt: skip
    ok = sum(r["status"] == "ok" for r in records)
    about = {
        "model": args.model, "method": method, "forward passes per image": args.budget,
        "seed": args.seed, "confidence": "the model's probability of the explained class",
    }  # fmt: skip
    return explain_index_html(entries, title=f"{method} saliency of {ok} images", about=about)
