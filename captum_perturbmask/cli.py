"""Command line interface: ``captum-perturbmask`` (also ``python -m captum_perturbmask``).

Two subcommands:

``demo``
    Explains held-out images of the shipped digits-in-clutter set with the shipped classifier
    using PerturbMask, RISE, Grad-CAM, LIME and Occlusion (:func:`~captum_perturbmask.compare.
    compare`) and writes ``maps.png``, ``metrics.md``, ``metrics.csv``, ``convergence.png``,
    ``convergence.csv`` (insertion / deletion AUC vs forward passes, PerturbMask vs RISE) and
    ``variations.png`` (acceptable variations of the salient region from
    :class:`~captum_perturbmask.generative.LatentVariationGenerator` with the shipped GAN).
    Everything is offline.

``explain``
    Explains one PNG/JPEG image with a torchvision classifier (random weights, a local state
    dict, or ``--weights DEFAULT`` to let torchvision download its default weights) and writes
    ``saliency.png`` (overlay) and ``saliency.pt`` (the :math:`(H, W)` map).

Errors a user can cause (missing or corrupt image, unknown model, unfitting weights, target out
of range, bad ``--out``) end with one line ``captum-perturbmask: error: ...`` on stderr and exit
status 2, as argparse does for bad arguments.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import io
import math
import pickle
import sys
import time
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["main"]

PROG = "captum-perturbmask"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Forward budgets of the convergence figure (the poster's second figure).
CONVERGENCE_BUDGETS = (50, 100, 200, 400, 800)
QUICK_CONVERGENCE_BUDGETS = (16, 50)
PNG_DPI = 90
#: Saliency quantile whose box is scored against the digit box (top 10%: a digit box covers
#: about a tenth of the 64 x 64 canvas).
BOX_THRESHOLD = 0.9


class CLIError(Exception):
    """An expected failure: reported as one ``error:`` line, exit status 2."""


# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------
def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _int_at_least(minimum: int, words: str) -> Callable[[str], int]:
    """An argparse type for integers >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {words}, got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_non_negative_int = _int_at_least(0, "an integer >= 0")


def _budget_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers such as 50,100,200, got {text!r}"
        )
    return tuple(sorted(set(values)))


def _prepare_out(path: str) -> Path:
    """Create the output folder (and parents); a clear error if it cannot be one."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {path} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CLIError(f"cannot create --out directory {path}: {err.strerror or err}") from None
    return out


def _save_figure(fig: Any, path: Path, dpi: int = PNG_DPI) -> None:
    """Save a figure as an RGB PNG (no alpha channel, zlib-optimised: small files for docs)."""
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    buffer.seek(0)
    try:
        with Image.open(buffer) as img:
            img.convert("RGB").save(path, format="PNG", optimize=True)
    except OSError as err:
        raise CLIError(f"cannot write {path}: {err.strerror or err}") from None


def _display_maps(maps: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Channel-summed maps for display: above-median part per image, scaled to [0, 1].

    The metrics rank pixels by value, so an offset (RISE's expected-score baseline) or a sign
    does not matter to them; shifting by the median removes both from the picture as well and
    shows the upper half of every ranking on the same scale.
    """
    shown = {}
    for name, m in maps.items():
        flat = m.detach().float().sum(1, keepdim=True) if m.ndim == 4 else m.detach().float()
        pixels = flat.flatten(-2)
        mid = pixels.median(dim=-1, keepdim=True).values.unsqueeze(-1)
        top = pixels.amax(dim=-1, keepdim=True).unsqueeze(-1)
        shown[name] = ((flat - mid) / (top - mid).clamp_min(1e-12)).clamp_min(0)
    return shown


def _write_text(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        raise CLIError(f"cannot write {path}: {err.strerror or err}") from None


def _first_sentence(err: BaseException, limit: int = 120) -> str:
    """The first sentence of an exception message, for one-line error reports."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    text = text.split(". ")[0].rstrip(".")
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _CountForwards:
    """Counts the rows that go through a module (forward pre-hook) inside a ``with`` block."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.rows = 0

    def _hook(self, module: nn.Module, args: tuple) -> None:
        if args and isinstance(args[0], Tensor) and args[0].ndim > 0:
            self.rows += int(args[0].shape[0])

    def __enter__(self) -> _CountForwards:
        self.rows = 0
        self._handle = self.model.register_forward_pre_hook(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()


# ------------------------------------------------------------------------------------------
# demo
# ------------------------------------------------------------------------------------------
def _logged_methods(
    methods: Mapping[str, Callable[[Tensor, Any, int], Tensor]], n_images: int
) -> dict[str, Callable[[Tensor, Any, int], Tensor]]:
    """Wrap ``compare`` methods to print one line per run (compare has no progress bar)."""

    def wrap(name: str, fn: Callable[[Tensor, Any, int], Tensor]) -> Callable:
        def run(x: Tensor, target: Any, seed: int) -> Tensor:
            start = time.perf_counter()
            out = fn(x, target, seed)
            _say(
                f"  {name:<11} seed {seed}: {n_images} maps in {time.perf_counter() - start:.1f} s"
            )
            return out

        return run

    return {name: wrap(name, fn) for name, fn in methods.items()}


def _convergence(
    model: nn.Module,
    images: Tensor,
    target: Tensor,
    budgets: Sequence[int],
    seeds: Sequence[int],
    batch_size: int,
) -> list[dict[str, Any]]:
    """Insertion / deletion AUC of PerturbMask and RISE vs the forward budget.

    Each value is the mean over images and seeds; ``*_sem`` is the standard error over seeds
    of the per-seed image means (the run-to-run noise of the estimate at that budget).
    """
    from captum_perturbmask.compare import default_methods
    from captum_perturbmask.metrics import insertion_deletion

    rows: list[dict[str, Any]] = []
    n = images.shape[0]

    def mean_sem(values: list[float]) -> tuple[float, float]:
        v = torch.tensor(values, dtype=torch.float64)
        sem = float(v.std() / math.sqrt(len(values))) if len(values) > 1 else 0.0
        return float(v.mean()), sem

    for budget in budgets:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            methods = default_methods(model, images, budget, batch_size)
        for name in ("PerturbMask", "RISE"):
            ins, dele, forwards, seconds = [], [], 0, 0.0
            for seed in seeds:
                torch.manual_seed(seed)
                with _CountForwards(model) as counter:
                    start = time.perf_counter()
                    maps = methods[name](images, target, seed)
                    seconds += time.perf_counter() - start
                forwards += counter.rows
                curves = insertion_deletion(model, images, maps, target, batch_size=batch_size)
                ins.append(float(curves.insertion.double().mean()))
                dele.append(float(curves.deletion.double().mean()))
            (ins_mean, ins_sem), (del_mean, del_sem) = mean_sem(ins), mean_sem(dele)
            rows.append(
                {
                    "method": name,
                    "budget": budget,
                    "forwards_per_input": forwards / (n * len(seeds)),
                    "insertion": ins_mean,
                    "insertion_sem": ins_sem,
                    "deletion": del_mean,
                    "deletion_sem": del_sem,
                    "seconds_per_input": seconds / (n * len(seeds)),
                    "runs": len(seeds),
                }
            )
            _say(
                f"  budget {budget:>4} {name:<11}: insertion {ins_mean:.3f}, "
                f"deletion {del_mean:.3f} ({seconds:.1f} s)"
            )
    return rows


def _convergence_figure(rows: list[dict[str, Any]]) -> Any:
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator

    fig = Figure(figsize=(8.0, 3.2), layout="constrained")
    axes = fig.subplots(1, 2)
    styles = {"PerturbMask": ("tab:red", "o"), "RISE": ("tab:blue", "s")}
    for ax, key, title in (
        (axes[0], "insertion", "insertion AUC ↑"),
        (axes[1], "deletion", "deletion AUC ↓"),
    ):
        for name, (color, marker) in styles.items():
            pts = [r for r in rows if r["method"] == name]
            ax.errorbar(
                [r["budget"] for r in pts],
                [r[key] for r in pts],
                yerr=[r[f"{key}_sem"] for r in pts],
                label=name,
                color=color,
                marker=marker,
                capsize=3,
            )
        ax.set_xscale("log")
        budgets = sorted({r["budget"] for r in rows})
        ax.set_xticks(budgets, [f"{b:g}" for b in budgets])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("forward passes per image (+1 clean pass)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
    axes[0].legend()
    return fig


def _write_convergence_csv(rows: list[dict[str, Any]], path: Path) -> None:
    keys = list(rows[0])
    try:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
    except OSError as err:
        raise CLIError(f"cannot write {path}: {err.strerror or err}") from None


def _convergence_markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| method | budget | forwards/input | insertion ↑ | deletion ↓ | seconds/input |",
        "|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["method"] != "PerturbMask", r["budget"])):
        lines.append(
            f"| {r['method']} | {r['budget']} | {r['forwards_per_input']:g} | "
            f"{r['insertion']:.3f} ± {r['insertion_sem']:.3f} | "
            f"{r['deletion']:.3f} ± {r['deletion_sem']:.3f} | {r['seconds_per_input']:.3g} |"
        )
    return "\n".join(lines)


def _fit_mask_to_patch(saliency: Tensor, threshold: float, patch: int) -> Tensor:
    """Box mask ``B`` of the top saliency, cut to a ``patch``-sized window around its peak."""
    from captum_perturbmask.metrics import box_to_mask, saliency_box

    size = tuple(saliency.shape[-2:])
    boxes = saliency_box(saliency, threshold=threshold).clone()
    flat = saliency.sum(1) if saliency.ndim == 4 else saliency
    peak = flat.flatten(1).argmax(1)
    peak_rc = torch.stack([peak // size[1], peak % size[1]], 1).to(boxes.dtype)
    for axis, (lo, hi) in enumerate(((1, 3), (0, 2))):  # rows use y1,y2; cols x1,x2
        length = boxes[:, hi] - boxes[:, lo]
        too_big = length > patch
        start = (peak_rc[:, axis] - patch // 2).clamp(min=boxes[:, lo], max=boxes[:, hi] - patch)
        boxes[:, lo] = torch.where(too_big, start, boxes[:, lo])
        boxes[:, hi] = torch.where(too_big, start + patch, boxes[:, hi])
    return box_to_mask(boxes, size)


def _variations(
    classifier: nn.Module,
    images: Tensor,
    labels: Tensor,
    saliency: Tensor,
    *,
    n_restarts: int,
    n_keep: int,
    n_steps: int,
    seed: int,
) -> tuple[Any, Any]:
    """Acceptable variations of the PerturbMask region ``B`` with the shipped DCGAN."""
    from captum_perturbmask.data import load_default_gan
    from captum_perturbmask.data.digits import PATCH_SIZE
    from captum_perturbmask.generative import LatentVariationGenerator

    generator, discriminator = load_default_gan()
    mask = _fit_mask_to_patch(saliency, threshold=0.98, patch=PATCH_SIZE)
    lvg = LatentVariationGenerator(generator, discriminator, forward_func=classifier)
    out = lvg.generate(
        images,
        mask=mask,
        target=labels,
        n_restarts=n_restarts,
        n_keep=n_keep,
        n_steps=n_steps,
        seed=seed,
        show_progress=True,
    )
    return out, _variations_figure(out, images)


def _variations_figure(out: Any, images: Tensor) -> Any:
    from matplotlib.figure import Figure

    n, k = out.variants.shape[:2]
    cols = 2 + k
    fig = Figure(figsize=(1.35 * cols, 1.55 * n), layout="constrained")
    axes = fig.subplots(n, cols, squeeze=False)

    def show(ax: Any, img: Tensor, title: str, color: str = "black") -> None:
        ax.imshow(img.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy())
        ax.set_title(title, fontsize=7, color=color)
        ax.set_xticks([])
        ax.set_yticks([])

    for i in range(n):
        target = int(out.target[i])
        show(axes[i, 0], images[i], f"original, {target} p={float(out.input_confidence[i]):.2f}")
        dimmed = images[i].clone()
        dimmed[:, ~out.mask[i].cpu()] *= 0.35
        show(axes[i, 1], dimmed, "mask B")
        for j in range(k):
            p = float(out.confidence[i, j])
            pred = int(out.predictions[i, j])
            if bool(out.accepted[i, j]):
                title, color = f"✓ accepted p={p:.2f}", "tab:green"
            elif pred != target:
                title, color = f"✗ flipped →{pred}", "tab:red"
            else:
                title, color = f"✗ p={p:.2f} < 0.5", "tab:orange"
            show(axes[i, 2 + j], out.variants[i, j], title, color)
    return fig


def _cmd_demo(args: argparse.Namespace) -> int:
    from captum_perturbmask.compare import compare, default_methods, plot_maps
    from captum_perturbmask.data import load_default_classifier, make_digits_clutter

    quick = args.quick
    n_images = args.n_images or (2 if quick else 8)
    budget = args.budget or (50 if quick else 400)
    n_seeds = args.seeds or (2 if quick else 3)
    budgets = args.convergence_budgets or (
        QUICK_CONVERGENCE_BUDGETS if quick else CONVERGENCE_BUDGETS
    )
    n_restarts, n_keep, n_steps = (8, 3, 25) if quick else (16, 6, 100)
    n_varied = min(n_images, 2 if quick else 4)
    seeds = tuple(args.seed + i for i in range(n_seeds))
    out = _prepare_out(args.out)
    batch_size = 64
    t0 = time.perf_counter()

    def stage(i: int, text: str) -> None:
        _say(f"[{i}/4 {time.perf_counter() - t0:5.0f} s] {text}")

    ds = make_digits_clutter("test", n=n_images, seed=args.seed)
    classifier = load_default_classifier()
    images, labels, boxes = ds.images, ds.labels, ds.boxes
    with torch.no_grad():
        accuracy = float((classifier(images).argmax(1) == labels).float().mean())

    stage(
        1,
        f"comparing PerturbMask, RISE, Grad-CAM, LIME, Occlusion on {n_images} held-out "
        f"digits-in-clutter images (budget {budget} forwards, seeds {list(seeds)})",
    )
    methods = _logged_methods(default_methods(classifier, images, budget, batch_size), n_images)
    table = compare(
        methods,
        model=classifier,
        inputs=images,
        target=labels,
        boxes=boxes,
        budget=budget,
        seeds=seeds,
        batch_size=batch_size,
        box_threshold=BOX_THRESHOLD,
    )
    table.to_csv(str(out / "metrics.csv"))
    fig = plot_maps(_display_maps(table.maps), images, indices=range(min(n_images, 3)))
    _save_figure(fig, out / "maps.png", dpi=80)

    stage(2, f"convergence of PerturbMask vs RISE at budgets {list(budgets)}")
    conv = _convergence(classifier, images, labels, budgets, seeds, batch_size)
    _write_convergence_csv(conv, out / "convergence.csv")
    _save_figure(_convergence_figure(conv), out / "convergence.png")

    stage(
        3,
        f"acceptable variations of the PerturbMask region B on {n_varied} images "
        f"(shipped DCGAN, {n_restarts} restarts x {n_steps} steps)",
    )
    variations, fig = _variations(
        classifier,
        images[:n_varied],
        labels[:n_varied],
        table.maps["PerturbMask"][:n_varied],
        n_restarts=n_restarts,
        n_keep=n_keep,
        n_steps=n_steps,
        seed=args.seed,
    )
    _save_figure(fig, out / "variations.png")
    accepted = variations.accepted
    flipped = (variations.predictions != variations.target[:, None]).sum()

    stage(4, "writing metrics.md")
    variation_text = (
        f"LatentVariationGenerator with the shipped DCGAN on {n_varied} images: B is the box of "
        f"the top-2% PerturbMask saliency; {n_restarts} latent restarts x {n_steps} steps, best "
        f"{n_keep} kept per image.\n\n"
        f"**Accepted fraction: {variations.accepted_fraction:.2f}** ({int(accepted.sum())} of "
        f"{accepted.numel()} variants keep the class with confidence >= 0.5; "
        f"{int(flipped)} flip the decision)."
    )
    top = table.top_k
    top_text = f"top-{100 * top:g}%" if isinstance(top, float) else f"top-{top}"
    box_top = f"top-{100 * (1 - BOX_THRESHOLD):.0f}%"
    threads = torch.get_num_threads()
    paragraphs = [
        "# captum-perturbmask demo",
        f"{n_images} held-out test images of the shipped digits-in-clutter set (seed "
        f"{args.seed}), shipped `DigitsCNN` classifier (accuracy on these images "
        f"{accuracy:.2f}), target = true class. Every method gets about {budget} forward passes "
        f"per image; stochastic methods run with seeds {list(seeds)} (metrics are means over "
        "images and runs).",
        table.to_markdown(),
        "Insertion / deletion: AUC of the softmax score while the most salient pixels are "
        f"inserted into a blurred image / deleted to zero. IoU: box of the {box_top} saliency vs "
        "the annotated digit box. Pointing: the saliency peak falls in the box. Spearman, "
        f"{top_text} IoU: agreement between runs with different seeds (consistency). Forwards "
        "and seconds are per image. In maps.png each map shows its above-median part per "
        "image, scaled to [0, 1] (the metrics use only the ranking of pixels).",
        "## Convergence (PerturbMask vs RISE)",
        f"Mean over the {n_images} images and seeds {list(seeds)}; ± is the standard error "
        "over seeds (run-to-run noise).",
        _convergence_markdown(conv),
        "## Acceptable variations",
        variation_text,
        f"Runtime: {time.perf_counter() - t0:.0f} s on {threads} CPU thread"
        f"{'s' if threads > 1 else ''}.",
    ]
    md = "\n\n".join(paragraphs) + "\n"
    _write_text(out / "metrics.md", md)
    _say(
        f"done in {time.perf_counter() - t0:.0f} s; wrote maps.png, metrics.md, metrics.csv, "
        f"convergence.png, convergence.csv, variations.png to {out}"
    )
    print(table.to_markdown())
    print(f"accepted fraction of variations: {variations.accepted_fraction:.2f}")
    return 0


# ------------------------------------------------------------------------------------------
# explain
# ------------------------------------------------------------------------------------------
class _Normalize(nn.Module):
    """ImageNet normalisation as the first layer, so attributions live in pixel space."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


def _load_image(path: str, size: int) -> Tensor:
    """Read a PNG/JPEG as RGB in [0, 1], resize the short side to ``size``, centre-crop."""
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.v2 import functional as TF

    file = Path(path)
    if not file.exists():
        raise CLIError(f"image {path} does not exist")
    if not file.is_file():
        raise CLIError(f"image {path} is not a file")
    try:
        with Image.open(file) as img:
            img.load()
            rgb = img.convert("RGB")
    except (UnidentifiedImageError, Image.DecompressionBombError) as err:
        raise CLIError(f"cannot read image {path}: {err}") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise CLIError(f"cannot read image {path}: corrupt or truncated image ({err})") from None
    x = TF.pil_to_tensor(rgb)
    x = TF.to_dtype(x, torch.float32, scale=True)
    x = TF.resize(x, [size], antialias=True)
    return TF.center_crop(x, [size, size]).unsqueeze(0)


def _classification_models() -> list[str]:
    from torchvision import models

    return sorted(models.list_models(module=models))


def _unwrap_state_dict(obj: Any, path: str) -> dict[str, Tensor]:
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner:
                obj = inner
                break
    if (
        not isinstance(obj, Mapping)
        or not obj
        or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())
    ):
        kind = type(obj).__name__
        raise CLIError(
            f"weights file {path} is not a state dict (a mapping of parameter names to tensors, "
            f"as saved by torch.save(model.state_dict(), ...)); it holds a {kind}"
        )
    sd = dict(obj)
    if all(k.startswith("module.") for k in sd):  # saved from DataParallel
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def _load_state_dict(model: nn.Module, name: str, path: str) -> None:
    file = Path(path)
    if not file.is_file():
        raise CLIError(
            f"weights file {path} does not exist" + ("" if not file.exists() else " as a file")
        )
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Unsupported global" in str(err):
            raise CLIError(
                f"weights file {path} is not a plain state dict (it holds pickled objects, e.g. "
                "a whole model); save model.state_dict() instead"
            ) from None
        raise CLIError(
            f"cannot read weights file {path}: not a file saved with torch.save (corrupt?)"
        ) from None
    except (RuntimeError, EOFError, ValueError, KeyError, OSError, zipfile.BadZipFile) as err:
        first = _first_sentence(err)
        raise CLIError(
            f"cannot read weights file {path}: not a file saved with torch.save ({first})"
        ) from None
    sd = _unwrap_state_dict(obj, path)
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    mismatched = [
        f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in sd and sd[k].shape != own[k].shape
    ]

    def some(keys: list[str]) -> str:
        return ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")

    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys ({some(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys ({some(unexpected)})")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches ({some(mismatched)})")
    if problems:
        hint = "; for another number of classes pass --num-classes" if mismatched else ""
        raise CLIError(
            f"weights file {path} does not fit model {name}: " + "; ".join(problems) + hint
        )
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as err:  # e.g. dtype trouble not caught above
        first = _first_sentence(err)
        raise CLIError(f"weights file {path} does not fit model {name}: {first}") from None


def _build_model(name: str, weights: str | None, num_classes: int) -> tuple[nn.Module, list | None]:
    from torchvision import models

    available = _classification_models()
    if name not in available and name in models.list_models():
        raise CLIError(f"{name!r} is not a classification model; explain needs a classifier")
    if name not in available:
        close = difflib.get_close_matches(name, available, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise CLIError(
            f"unknown model {name!r}; {hint}choose a torchvision classification model "
            f"({', '.join(available[:6])}, ... {len(available)} in all)"
        )
    categories = None
    if weights == "DEFAULT":
        if num_classes != 1000:
            raise CLIError("--num-classes cannot be combined with --weights DEFAULT")
        try:
            model = models.get_model(name, weights="DEFAULT")
        except (OSError, RuntimeError, ValueError) as err:  # URLError is an OSError
            raise CLIError(
                f"cannot fetch the default weights of {name} (internet needed): {err}"
            ) from None
        categories = models.get_model_weights(name).DEFAULT.meta.get("categories")
        return model, categories
    with warnings.catch_warnings():  # e.g. inception's "weights init will change" notice
        warnings.simplefilter("ignore")
        model = models.get_model(name, weights=None, num_classes=num_classes)
    if weights is None:
        _say(
            f"{PROG}: warning: no --weights given; {name} has random weights, so the map "
            "explains an untrained network"
        )
    else:
        _load_state_dict(model, name, weights)
    return model, categories


def _explain_figure(image: Tensor, saliency: Tensor, title: str) -> Any:
    from captum.attr import visualization
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.4), layout="constrained")
    ax_img, ax_map = fig.subplots(1, 2)
    image_np = image.permute(1, 2, 0).cpu().numpy()
    ax_img.imshow(image_np)
    ax_img.set_title("input")
    ax_img.axis("off")
    attr = saliency[..., None].cpu().numpy()
    sign = "positive" if bool((saliency > 0).any()) else "absolute_value"
    if not bool(saliency.abs().amax() > 0):
        ax_map.imshow(image_np)
        ax_map.set_title(f"{title} (map all 0)")
        ax_map.axis("off")
    else:
        visualization.visualize_image_attr(
            attr,
            image_np,
            method="blended_heat_map",
            sign=sign,
            plt_fig_axis=(fig, ax_map),
            use_pyplot=False,
            show_colorbar=False,
            title=title,
        )
    return fig


def _cmd_explain(args: argparse.Namespace) -> int:
    from captum_perturbmask.attr import RISE, PerturbMask

    if args.size < 8:
        raise CLIError(f"--size must be at least 8 pixels, got {args.size}")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise CLIError(f"--out {args.out} exists and is not a directory")
    image = _load_image(args.image, args.size)
    model, categories = _build_model(args.model, args.weights, args.num_classes)
    wrapped = nn.Sequential(_Normalize(), model).eval()
    try:
        with torch.no_grad():
            logits = wrapped(image)
    except RuntimeError as err:  # e.g. an input too small for the architecture
        first = _first_sentence(err)
        raise CLIError(
            f"{args.model} cannot classify a {args.size}x{args.size} image ({first}); "
            "try a larger --size"
        ) from None
    if logits.ndim != 2:
        raise CLIError(f"{args.model} returned outputs of shape {tuple(logits.shape)}, not logits")
    n_classes = logits.shape[1]
    if args.target is None:
        target = int(logits.argmax(1))
    elif not 0 <= args.target < n_classes:
        raise CLIError(
            f"--target {args.target} is out of range: {args.model} has {n_classes} "
            f"classes (0..{n_classes - 1})"
        )
    else:
        target = args.target
    confidence = float(torch.softmax(logits.double(), 1)[0, target])
    label = f" ({categories[target]})" if categories and target < len(categories) else ""

    out = _prepare_out(args.out)
    _say(
        f"explaining class {target}{label} of {args.model} with {args.method} "
        f"({args.budget} forward passes, {args.size}x{args.size} input)"
    )
    start = time.perf_counter()
    if args.method == "perturbmask":
        attr = PerturbMask(wrapped).attribute(
            image,
            target=target,
            budget=args.budget,
            seed=args.seed,
            perturbations_per_eval=args.batch_size,
            show_progress=True,
        )
    else:
        attr = RISE(wrapped).attribute(
            image,
            target=target,
            n_masks=args.budget,
            seed=args.seed,
            perturbations_per_eval=args.batch_size,
            show_progress=True,
        )
    seconds = time.perf_counter() - start
    saliency = attr[0].detach().float().mean(0).cpu()  # channels share the mask: (H, W)

    title = f"{args.method}: class {target}{label}, p={confidence:.3f}"
    _save_figure(_explain_figure(image[0], saliency, title), out / "saliency.png")
    try:
        torch.save(saliency, out / "saliency.pt")
    except OSError as err:
        raise CLIError(f"cannot write {out / 'saliency.pt'}: {err.strerror or err}") from None
    print(f"target: {target}{label}")
    print(f"confidence: {confidence:.4f}")
    print(f"wrote {out / 'saliency.png'} and {out / 'saliency.pt'} ({seconds:.1f} s)")
    return 0


# ------------------------------------------------------------------------------------------
# Entry point
# ------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The ``captum-perturbmask`` argument parser."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Perturbation-mask saliency (Thakur & Fischmeister) with Captum: a "
        "reproducible offline demo and a one-image explainer.",
    )
    from captum_perturbmask import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="compare saliency methods on the shipped digits-in-clutter data (offline)",
        description="Explain held-out digits-in-clutter images with PerturbMask, RISE, "
        "Grad-CAM, LIME and Occlusion; write maps.png, metrics.md/.csv, convergence.png/.csv "
        "and variations.png into --out.",
    )
    demo.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    demo.add_argument(
        "--n-images",
        type=_positive_int,
        default=None,
        metavar="N",
        help="images to explain (default 8; 2 with --quick)",
    )
    demo.add_argument(
        "--budget",
        type=_positive_int,
        default=None,
        metavar="B",
        help="forward passes per image and method (default 400; 50 with --quick)",
    )
    demo.add_argument("--seed", type=_non_negative_int, default=0, help="first seed (default 0)")
    demo.add_argument(
        "--seeds",
        type=_positive_int,
        default=None,
        metavar="K",
        help="runs per stochastic method for consistency (default 3; 2 with --quick)",
    )
    demo.add_argument(
        "--convergence-budgets",
        type=_budget_list,
        default=None,
        metavar="LIST",
        help="comma-separated budgets of the convergence figure (default "
        "50,100,200,400,800; 16,50 with --quick)",
    )
    demo.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        help="torch CPU threads (default 1: fastest for these small models on a busy machine)",
    )
    demo.add_argument(
        "--quick", action="store_true", help="a small, fast run (2 images, budget 50, 2 seeds)"
    )
    demo.set_defaults(func=_cmd_demo)

    explain = sub.add_parser(
        "explain",
        help="explain one image with a torchvision classifier",
        description="Explain a PNG/JPEG image with a torchvision classification model; write "
        "saliency.png (overlay) and saliency.pt (the (H, W) map) into --out.",
    )
    explain.add_argument("image", metavar="IMAGE", help="PNG or JPEG file")
    explain.add_argument(
        "--model",
        default="resnet50",
        help="torchvision classification model name (default resnet50)",
    )
    explain.add_argument(
        "--weights",
        default=None,
        metavar="FILE",
        help="state-dict file (torch.save(model.state_dict())), or DEFAULT to "
        "let torchvision download its default weights; random init if left "
        "out",
    )
    explain.add_argument(
        "--num-classes",
        type=_positive_int,
        default=1000,
        metavar="K",
        help="classes of the model's head (default 1000)",
    )
    explain.add_argument(
        "--target",
        type=int,
        default=None,
        metavar="K",
        help="class to explain (default: the predicted class)",
    )
    explain.add_argument("--method", choices=("perturbmask", "rise"), default="perturbmask")
    explain.add_argument(
        "--budget", type=_positive_int, default=400, help="forward passes (default 400)"
    )
    explain.add_argument(
        "--size",
        type=_positive_int,
        default=224,
        help="input side in pixels after resize and centre crop (default 224)",
    )
    explain.add_argument("--seed", type=_non_negative_int, default=0)
    explain.add_argument(
        "--batch-size",
        type=_positive_int,
        default=32,
        help="perturbed images per forward batch (default 32)",
    )
    explain.add_argument(
        "--threads", type=_positive_int, default=None, help="torch CPU threads (default: torch's)"
    )
    explain.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    explain.set_defaults(func=_cmd_explain)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 usage or input error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and argparse usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    threads = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        return int(args.func(args))
    except CLIError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    finally:
        torch.set_num_threads(threads)
