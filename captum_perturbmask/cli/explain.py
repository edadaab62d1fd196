"""``captum-perturbmask explain``: one image, one torchvision classifier, one saliency map.

A thin layer over the library: the image is resized with its aspect ratio kept (never
cropped), :class:`~torchvision.transforms.v2.Normalize` becomes the model's first layer (so the
map lives in pixel space), :class:`~captum_perturbmask.PerturbMask` or
:class:`~captum_perturbmask.RISE` runs at ``--budget`` forward passes, and the map is resized
back to the image's own :math:`H \\times W` for ``saliency.pt`` and ``saliency.png``
(:func:`~captum_perturbmask.viz.plot_explanation`).
"""

from __future__ import annotations

import argparse
import difflib
import io
import pickle
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from captum_perturbmask.cli._common import (
    MAX_BATCH,
    MAX_SIZE,
    MIN_SIZE,
    PROG,
    CLIError,
    check_targets,
    file_path,
    first_sentence,
    int_range,
    prepare_out,
    say,
    text_kind,
    write_files,
)

if TYPE_CHECKING:
    from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Largest image accepted, in pixels (a 50-megapixel RGB image is 150 MB as bytes; larger
#: ones are refused before their pixels are decoded).
MAX_PIXELS = 50_000_000
DEFAULT_NUM_CLASSES = 1000


# ------------------------------------------------------------------------------------------
# Image
# ------------------------------------------------------------------------------------------
def load_image(path: str) -> Tensor:
    """Read a PNG/JPEG as an RGB ``uint8`` tensor :math:`(3, H, W)`, refusing huge images."""
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.v2 import functional as TF

    file = Path(path)
    if not file.exists():
        raise CLIError(f"image {path} does not exist")
    if not file.is_file():
        raise CLIError(f"image {path} is not a file")
    limit = f"{MAX_PIXELS / 1e6:g} megapixels"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(file) as img:
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise CLIError(
                        f"image {path} is {width}x{height} ({width * height / 1e6:.0f} "
                        f"megapixels), more than the {limit} explain accepts; downscale it first"
                    )
                img.load()
                rgb = img if img.mode == "RGB" else img.convert("RGB")
                pixels = TF.pil_to_tensor(rgb)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise CLIError(
            f"refusing image {path}: more than {limit} ({first_sentence(err)})"
        ) from None
    except UnidentifiedImageError:
        raise CLIError(f"cannot read image {path}: not a PNG, JPEG or other image") from None
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        raise CLIError(f"cannot read image {path}: corrupt or truncated image ({err})") from None
    return pixels


def resized_size(height: int, width: int, size: int, pad: bool) -> tuple[int, int]:
    """The model's input size for an image: the shorter side ``size`` (the longer one at most
    :data:`~captum_perturbmask.cli.MAX_SIZE`), or with ``pad`` the longer side ``size``."""
    if pad:
        scale = size / max(height, width)
    else:
        scale = min(size / min(height, width), MAX_SIZE / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def preprocess(image: Tensor, size: int, pad: bool) -> tuple[Tensor, tuple[int, int, int, int]]:
    """Resize (aspect ratio kept, antialiased) and, with ``pad``, centre in a square filled with
    the normalisation mean; returns :math:`(1, 3, h, w)` in :math:`[0, 1]` and the image's
    region ``(top, left, height, width)`` in it."""
    import torch
    from torchvision.transforms.v2 import functional as TF

    h, w = resized_size(image.shape[1], image.shape[2], size, pad)
    x = TF.to_dtype(TF.resize(image, [h, w], antialias=True), torch.float32, scale=True)
    if not pad:
        return x.unsqueeze(0), (0, 0, h, w)
    canvas = torch.tensor(IMAGENET_MEAN).view(3, 1, 1).repeat(1, size, size)
    top, left = (size - h) // 2, (size - w) // 2
    canvas[:, top : top + h, left : left + w] = x
    return canvas.unsqueeze(0), (top, left, h, w)


# ------------------------------------------------------------------------------------------
# Model and weights
# ------------------------------------------------------------------------------------------
def _classification_models() -> list[str]:
    from torchvision import models

    return sorted(models.list_models(module=models))


def _min_input_size(name: str) -> tuple[int, int] | None:
    """The smallest input the architecture takes, from torchvision's weight metadata."""
    from torchvision import models

    try:
        return tuple(models.get_model_weights(name).DEFAULT.meta["min_size"])  # type: ignore[return-value]
    except (KeyError, ValueError, AttributeError):
        return None


def _sniff_checkpoint(file: Path) -> str | None:
    """``None`` when ``file`` may be a torch.save checkpoint, else what it looks like."""
    with open(file, "rb") as fh:
        head = fh.read(4096)
    if not head:
        return "it is empty"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # zip, or a pickle (legacy)
        return None
    if head[8:10] == b'{"':
        return "it looks like a safetensors file (load it with safetensors.torch.load_file)"
    kind = text_kind(head)
    if kind is not None:
        return f"it holds {kind}"
    return "it is neither a zip archive nor a pickle, the two formats of torch.save"


def _unwrap_state_dict(obj: Any, path: str) -> dict[str, Tensor]:
    from torch import Tensor
    from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

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
    consume_prefix_in_state_dict_if_present(sd, "module.")  # saved from DataParallel
    return sd


def _file_class_count(
    name: str, num_classes: int, own: Mapping[str, Tensor], sd: Mapping[str, Tensor]
) -> int | None:
    """The class count of the file's head when that is the only difference, else ``None``.

    The head is found by building the architecture (on the meta device: no memory) with one
    class more and seeing which parameter shapes change, and where.
    """
    import torch
    from torchvision import models

    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            other = models.get_model(name, weights=None, num_classes=num_classes + 1).state_dict()
    except Exception:  # an architecture that cannot be built on meta: no hint
        return None
    counts = set()
    for key, param in own.items():
        mine, theirs = tuple(param.shape), tuple(sd[key].shape)
        if mine == theirs:
            continue
        if len(theirs) != len(mine) or len(other[key].shape) != len(mine):
            return None
        head = [d for d, (a, b) in enumerate(zip(mine, other[key].shape, strict=True)) if a != b]
        if not head:
            return None
        if any(theirs[d] != mine[d] for d in range(len(mine)) if d not in head):
            return None
        counts.update(theirs[d] for d in head)
    return counts.pop() if len(counts) == 1 else None


def load_state_dict(model: nn.Module, name: str, path: str, num_classes: int) -> None:
    """Load a local state dict into ``model``; one clear :class:`CLIError` when it cannot."""
    import torch

    file = Path(path)
    if not file.is_file():
        where = "" if not file.exists() else " as a file"
        raise CLIError(f"weights file {path} does not exist{where}")
    problem = _sniff_checkpoint(file)
    if problem is not None:
        raise CLIError(
            f"weights file {path} is not a torch.save checkpoint: {problem}; save the weights "
            "with torch.save(model.state_dict(), path)"
        )
    try:  # weights_only: a pickle that would run code is refused, never executed
        with warnings.catch_warnings():  # e.g. "pickle protocol 100" of a damaged file
            warnings.simplefilter("ignore")
            obj = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Unsupported global" in str(err):
            raise CLIError(
                f"weights file {path} is not a plain state dict (it holds pickled objects, e.g. "
                "a whole model, which are not loaded); save model.state_dict() instead"
            ) from None
        raise CLIError(
            f"cannot read weights file {path}: not a file saved with torch.save (corrupt?)"
        ) from None
    except Exception as err:  # a damaged file can fail in many ways inside the unpickler
        raise CLIError(
            f"cannot read weights file {path}: not a file saved with torch.save "
            f"({first_sentence(err)})"
        ) from None
    sd = _unwrap_state_dict(obj, path)
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    mismatched = [k for k in own if k in sd and sd[k].shape != own[k].shape]

    def some(keys: list[str]) -> str:
        return ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")

    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys ({some(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys ({some(unexpected)})")
    if mismatched:
        shapes = [
            f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}" for k in mismatched
        ]
        problems.append(f"{len(mismatched)} shape mismatches ({some(shapes)})")
    if problems:
        hint = ""
        if mismatched and not missing and not unexpected:
            count = _file_class_count(name, num_classes, own, sd)
            if count is not None and count >= 2:
                hint = f"; the file's head has {count} classes: pass --num-classes {count}"
        raise CLIError(
            f"weights file {path} does not fit model {name}: " + "; ".join(problems) + hint
        )
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as err:  # e.g. dtype trouble not caught above
        raise CLIError(
            f"weights file {path} does not fit model {name}: {first_sentence(err)}"
        ) from None


def build_model(
    name: str, weights: str | None, num_classes: int | None
) -> tuple[nn.Module, list[str] | None]:
    """The torchvision classifier ``name`` with its weights, and its class names if known."""
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
    if weights == "DEFAULT":
        if num_classes is not None:
            raise CLIError("--num-classes cannot be combined with --weights DEFAULT")
        try:
            model = models.get_model(name, weights="DEFAULT")
        except (OSError, RuntimeError, ValueError) as err:  # URLError is an OSError
            raise CLIError(
                f"cannot fetch the default weights of {name} (internet needed): {err}"
            ) from None
        return model, models.get_model_weights(name).DEFAULT.meta.get("categories")
    classes = DEFAULT_NUM_CLASSES if num_classes is None else num_classes
    with warnings.catch_warnings():  # e.g. inception's "weights init will change" notice
        warnings.simplefilter("ignore")
        model = models.get_model(name, weights=None, num_classes=classes)
    if weights is None:
        say(
            f"{PROG}: warning: no --weights given; {name} has random weights, so the map "
            "explains an untrained network"
        )
    else:
        load_state_dict(model, name, weights, classes)
    return model, None


def _check_input_size(name: str, image: Tensor, args: argparse.Namespace) -> None:
    """Refuse an input smaller than the architecture takes; say which --size would do."""
    minimum = _min_input_size(name)
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
            f"{name} needs inputs of at least {minimum[0]}x{minimum[1]} pixels, but this "
            f"image's aspect ratio gives {top_h}x{top_w} at most; crop it or pass --pad"
        )
    while low < high:  # the smallest --size that fits
        mid = (low + high) // 2
        mh, mw = model_input(mid)
        low, high = (mid + 1, high) if mh < minimum[0] or mw < minimum[1] else (low, mid)
    raise CLIError(
        f"{name} needs inputs of at least {minimum[0]}x{minimum[1]} pixels, the model's input "
        f"would be {h}x{w}: pass --size {low} or more"
    )


# ------------------------------------------------------------------------------------------
# The command
# ------------------------------------------------------------------------------------------
def add_parser(subparsers: Any, parents: Callable[..., list[argparse.ArgumentParser]]) -> None:
    """The ``explain`` subcommand."""
    explain = subparsers.add_parser(
        "explain",
        help="explain one image with a torchvision classifier",
        description="Explain a PNG/JPEG image with a torchvision classification model; write "
        "saliency.png (overlay) and saliency.pt (the (H, W) map, in the image's pixels) into "
        "--out. The image is resized with its aspect ratio kept, never cropped.",
        parents=parents(
            "--model", "--weights", "--num-classes", "--budget", "--seed", "--device",
            "--threads", "--out",
            model={
                "default": "resnet50",
                "help": "torchvision classification model name (default resnet50)",
            },
        ),
    )  # fmt: skip
    explain.add_argument("image", type=file_path, metavar="IMAGE", help="PNG or JPEG file")
    explain.add_argument(
        "--target",
        type=int,
        default=None,
        metavar="K",
        help="class to explain (default: the predicted class)",
    )
    explain.add_argument("--method", choices=("perturbmask", "rise"), default="perturbmask")
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
        default=32,
        help="perturbed images per forward batch (default 32)",
    )
    explain.set_defaults(command="explain")


def run(args: argparse.Namespace) -> int:
    """Explain one image; see :func:`add_parser` for the arguments."""
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torchvision.transforms.v2 import Normalize

    from captum_perturbmask import viz
    from captum_perturbmask._core.forward import CountForwards
    from captum_perturbmask.attr import RISE, PerturbMask

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise CLIError(f"--out {args.out} exists and is not a directory")
    image = load_image(args.image)
    height, width = image.shape[1:]
    model, categories = build_model(args.model, args.weights, args.num_classes)
    _check_input_size(args.model, image, args)
    x, (top, left, h, w) = preprocess(image, args.size, args.pad)
    device = args.device or torch.device("cpu")
    wrapped = nn.Sequential(Normalize(IMAGENET_MEAN, IMAGENET_STD), model).eval().to(device)
    x = x.to(device)
    try:
        with torch.no_grad():
            logits = wrapped(x)
    except (RuntimeError, ValueError, AssertionError) as err:  # e.g. ViT's size assertion
        shape = f"{x.shape[2]}x{x.shape[3]}"
        if "alloc" in str(err).lower() or "memory" in str(err).lower():
            raise CLIError(
                f"out of memory running {args.model} on a {shape} image; pass a smaller --size"
            ) from None
        hint = ""
        if x.shape[2] != x.shape[3]:
            hint = "; if the model needs square inputs, pass --pad (and its --size)"
        raise CLIError(
            f"{args.model} cannot classify a {shape} image ({first_sentence(err)}){hint}"
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
    names = categories if categories and len(categories) == n_classes else None
    label = f" ({names[target]})" if names else ""

    out = prepare_out(args.out)
    check_targets([out / "saliency.png", out / "saliency.pt"])
    padded = f", padded to {x.shape[2]}x{x.shape[3]} with the mean colour" if args.pad else ""
    print(
        f"preprocessing: resized {height}x{width} -> {h}x{w} (antialiased; aspect ratio kept, "
        f"nothing cropped){padded}; normalised with mean {IMAGENET_MEAN} and std "
        f"{IMAGENET_STD} as the model's first layer; the map is resized back to {height}x{width}"
    )
    say(
        f"explaining class {target}{label} of {args.model} with {args.method} "
        f"({args.budget} forward passes, {x.shape[2]}x{x.shape[3]} input)"
    )
    method = PerturbMask(wrapped) if args.method == "perturbmask" else RISE(wrapped)
    start = time.perf_counter()
    with CountForwards(wrapped) as counter:
        attr = method.attribute(
            x,
            target=target,
            budget=args.budget,
            seed=args.seed,
            perturbations_per_eval=args.batch_size,
            show_progress=True,
        )
    seconds = time.perf_counter() - start
    # channels share the mask: (h, w), then the image's own pixels (H, W)
    saliency = attr[0].detach().float().mean(0)[top : top + h, left : left + w]
    saliency = (
        F.interpolate(saliency[None, None], size=(height, width), mode="bilinear", antialias=True)[
            0, 0
        ]
        .cpu()
        .contiguous()
    )

    method_name = {"perturbmask": "PerturbMask", "rise": "RISE"}[args.method]
    fig = viz.plot_explanation(
        image, saliency, target=target, class_names=names, confidence=confidence, method=method_name
    )
    buffer = io.BytesIO()
    torch.save(saliency, buffer)
    write_files({out / "saliency.png": viz.png_bytes(fig), out / "saliency.pt": buffer.getvalue()})
    print(f"target: {target}{label}")
    print(f"confidence: {confidence:.4f}")
    print(
        f"wrote {out / 'saliency.png'} and {out / 'saliency.pt'} ({counter.rows} forward "
        f"passes, {seconds:.1f} s)"
    )
    return 0
