"""Any image (or series) classifier from a name or a file: :func:`load_model`.

``spec`` says where the model comes from (:func:`spec_kind` tells which):

* ``"digits"`` - the package's shipped digits-in-clutter CNN
  (:class:`~captum_perturbmask.data.DigitsCNN`, shipped weights);
* a torchvision classification model name (``"resnet50"``, ``"vit_b_16"``);
* a ``torch.export`` program file (``model.pt2``, :func:`torch.export.save`);
* a TorchScript file (:func:`torch.jit.save` of a scripted or traced model);
* ``"package.module:factory"`` or ``"path/to/file.py:factory"`` - a callable (a function or
  an ``nn.Module`` class) returning the model, called with ``num_classes=`` when that is given;
* ``"timm:NAME"`` - a `timm <https://github.com/huggingface/pytorch-image-models>`_ model
  (needs ``pip install timm``);
* ``"hf:FOLDER"`` - a Hugging Face ``transformers`` image classifier saved with
  ``save_pretrained`` in a local folder (needs ``pip install transformers``; read offline);
* an ``nn.Module`` (or any callable) itself.

``weights`` is a local state-dict file (read with ``weights_only=True``; a
``{"state_dict": ..., "class_names": [...]}`` checkpoint carries the class names too) for the
models built from code (torchvision, factory, timm, digits); ``"DEFAULT"`` asks torchvision
or timm for their published weights (a download). Exported, scripted and Hugging Face models
carry their weights in their files.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import json
import os
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from captum_perturbmask._core.errors import LoadError, one_line
from captum_perturbmask.loaders.weights import (
    check_names,
    class_count_hint,
    fit_state_dict,
    read_state_dict,
    sniff_file,
)
from captum_perturbmask.loaders.wrappers import Exported, Logits, Normalize, logits_of

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "NORMALIZE_CHOICES",
    "SPEC_KINDS",
    "load_class_names",
    "load_model",
    "min_input_size",
    "probe_model",
    "spec_kind",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: The kinds of ``spec`` :func:`~captum_perturbmask.loaders.load_model` takes.
SPEC_KINDS = ("digits", "torchvision", "export", "torchscript", "factory", "timm", "hf", "module")
#: ``normalize=`` names: the source's own normalisation, ImageNet's, or none.
NORMALIZE_CHOICES = ("auto", "imagenet", "none")
_FACTORY = re.compile(r"^(?P<module>[\w.\-/\\]+?(\.py)?):(?P<attr>[A-Za-z_][\w.]*)$")
_FILE_SUFFIXES = (".pt2", ".pt", ".pth", ".ts", ".jit", ".torchscript", ".zip")
DEFAULT_NUM_CLASSES = 1000


# ------------------------------------------------------------------------------- the spec
def spec_kind(spec: object) -> str:
    """Which kind of model ``spec`` names (one of
    :data:`~captum_perturbmask.loaders.models.SPEC_KINDS`), from the string alone (a file is
    told apart by its content: exported program or TorchScript).

    Raises:
        LoadError: ``spec`` is neither a string nor a callable, or names a file that is
            neither an exported program nor a TorchScript model.

    Example:
        >>> spec_kind("resnet50"), spec_kind("timm:convnext_tiny"), spec_kind("mypkg.nets:small")
        ('torchvision', 'timm', 'factory')
    """
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if isinstance(spec, nn.Module) or (callable(spec) and not isinstance(spec, str)):
        return "module"
    if not isinstance(spec, str) or not spec.strip():
        raise LoadError(
            "spec",
            f"must be a model name, a model file, 'module:factory', 'timm:NAME', 'hf:FOLDER' or "
            f"an nn.Module; got {spec!r}",
        )
    if spec == "digits":
        return "digits"
    if spec.startswith("timm:"):
        return "timm"
    if spec.startswith("hf:"):
        return "hf"
    path = Path(spec)
    if path.is_file():
        kind = sniff_file(path)
        if kind in ("export", "torchscript"):
            return kind
        what = {
            "state_dict": "a state dict (weights without the architecture): pass the "
            "architecture as the model and this file as `weights`",
            "safetensors": "a safetensors file of weights: pass the architecture as the model "
            "and this file as `weights`",
        }.get(kind, f"neither a torch.export program nor a TorchScript model ({kind} content)")
        raise LoadError("spec", f"{spec} is {what}")
    if path.is_dir():
        raise LoadError(
            "spec", f"{spec} is a folder; a Hugging Face model folder is given as hf:{spec}"
        )
    if _FACTORY.match(spec):
        return "factory"
    if path.suffix.lower() in _FILE_SUFFIXES or os.sep in spec or "/" in spec:
        raise LoadError("spec", f"{spec} does not exist (expected a model file)")
    return "torchvision"


def _device(device: object) -> torch.device:
    from captum_perturbmask._core.devices import resolve_device

    return torch.device("cpu") if device is None else resolve_device(device, "device")


def _no_weights(kind: str, spec: str, weights: object, num_classes: object) -> None:
    for value, name in ((weights, "weights"), (num_classes, "num_classes")):
        if value is not None:
            raise LoadError(
                name,
                f"cannot be combined with the {kind} model {spec}: its file holds the whole "
                "model, weights and head included",
            )


# ------------------------------------------------------------------------ building blocks
def _weighted(
    build: Callable[[int | None], nn.Module],
    weights: str | os.PathLike | None,
    num_classes: int | None,
    default_classes: int,
) -> tuple[nn.Module, list[str] | None]:
    """``build(num_classes)`` with a state-dict file loaded into it."""
    model = build(num_classes)
    names = None
    if weights is not None:
        sd, names = read_state_dict(weights)
        classes = default_classes if num_classes is None else num_classes
        hint = class_count_hint(lambda k: build(k), classes)
        fit_state_dict(model, sd, f"{weights}", hint=hint)
    return model, names


def _check_num_classes(num_classes: object) -> int | None:
    if num_classes is None:
        return None
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise LoadError("num_classes", f"must be a positive int, got {num_classes!r}")
    return num_classes


# ----------------------------------------------------------------------------- the kinds
def _digits(weights: Any, num_classes: int | None) -> tuple[nn.Module, list[str] | None, Any]:
    from captum_perturbmask.data import DigitsCNN, load_default_classifier

    if weights in (None, "DEFAULT") and num_classes in (None, 10):
        return load_default_classifier(), None, None
    if weights in (None, "DEFAULT"):
        raise LoadError(
            "num_classes",
            f"{num_classes} does not fit the shipped digits classifier's weights (10 classes); "
            "pass `weights` of a digits classifier with that head",
        )
    model, names = _weighted(lambda k: DigitsCNN(10 if k is None else k), weights, num_classes, 10)
    return model, names, None


def _torchvision_names() -> list[str]:
    from torchvision import models

    return sorted(models.list_models(module=models))


def min_input_size(spec: object) -> tuple[int, int] | None:
    """The smallest input :math:`(H, W)` of a torchvision architecture (its weights' metadata),
    or ``None`` (another kind of model, or no minimum known).

    Example:
        >>> min_input_size("inception_v3"), min_input_size("digits")
        ((75, 75), None)
    """
    if not isinstance(spec, str) or spec_kind(spec) != "torchvision":
        return None
    from torchvision import models

    try:
        return tuple(models.get_model_weights(spec).DEFAULT.meta["min_size"])  # type: ignore[return-value]
    except (KeyError, ValueError, AttributeError):
        return None


def _torchvision(
    name: str, weights: Any, num_classes: int | None
) -> tuple[nn.Module, list[str] | None, Any]:
    from torchvision import models

    available = _torchvision_names()
    if name not in available and name in models.list_models():
        raise LoadError("spec", f"{name!r} is not a classification model; a classifier is needed")
    if name not in available:
        close = difflib.get_close_matches(name, available, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise LoadError(
            "spec",
            f"{name!r} is not a known model; {hint}choose a torchvision classification model "
            f"({', '.join(available[:4])}, ... {len(available)} in all), a model file, "
            "'module:factory', 'timm:NAME' or 'hf:FOLDER'",
        )
    if weights == "DEFAULT":
        if num_classes is not None:
            raise LoadError("num_classes", "cannot be combined with `weights` DEFAULT")
        try:
            model = models.get_model(name, weights="DEFAULT")
        except (OSError, RuntimeError, ValueError) as err:  # URLError is an OSError
            raise LoadError(
                "weights",
                f"DEFAULT: cannot fetch the default weights of {name} (internet needed): "
                f"{one_line(err)}",
            ) from None
        names = models.get_model_weights(name).DEFAULT.meta.get("categories")
        return model, (list(names) if names else None), "imagenet"

    def build(k: int | None) -> nn.Module:
        with warnings.catch_warnings():  # e.g. inception's "weights init will change" notice
            warnings.simplefilter("ignore")
            return models.get_model(
                name, weights=None, num_classes=DEFAULT_NUM_CLASSES if k is None else k
            )

    model, names = _weighted(build, weights, num_classes, DEFAULT_NUM_CLASSES)
    return model, names, "imagenet"


def _import_factory(spec: str) -> Callable[..., Any]:
    match = _FACTORY.match(spec)
    assert match is not None
    module_name, attr = match["module"], match["attr"]
    try:
        if module_name.endswith(".py"):
            file = Path(module_name)
            if not file.is_file():
                raise LoadError("spec", f"{spec}: the file {module_name} does not exist")
            loader_spec = importlib.util.spec_from_file_location(file.stem, file)
            if loader_spec is None or loader_spec.loader is None:
                raise LoadError("spec", f"{spec}: cannot import {module_name}")
            module = importlib.util.module_from_spec(loader_spec)
            loader_spec.loader.exec_module(module)
        else:
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as err:
                if err.name != module_name.split(".")[0] or os.getcwd() in sys.path:
                    raise
                sys.path.insert(0, os.getcwd())  # a module next to the user, as `python -m`
                try:
                    module = importlib.import_module(module_name)
                finally:
                    sys.path.remove(os.getcwd())
    except LoadError:
        raise
    except ModuleNotFoundError as err:
        raise LoadError(
            "spec", f"{spec}: no module named {err.name!r} (expected 'package.module:factory')"
        ) from None
    except Exception as err:  # noqa: BLE001 - the user's module failed while importing
        raise LoadError(
            "spec",
            f"{spec}: importing {module_name} failed ({type(err).__name__}: {one_line(err)})",
        ) from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = sorted(n for n in dir(module) if not n.startswith("_"))
            close = difflib.get_close_matches(part, public, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise LoadError("spec", f"{spec}: {module_name} has no attribute {attr!r}{hint}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise LoadError(
            "spec", f"{spec}: {attr} is a {type(obj).__name__}, not a callable returning a model"
        )
    return obj


def _factory(
    spec: str, weights: Any, num_classes: int | None
) -> tuple[nn.Module | Callable[..., Any], list[str] | None, Any]:
    factory = _import_factory(spec)

    def build(k: int | None) -> Any:
        try:
            return factory() if k is None else factory(num_classes=k)
        except TypeError as err:
            if k is not None and "num_classes" in str(err):
                raise LoadError(
                    "num_classes", f"{k}: {spec} takes no num_classes argument ({one_line(err)})"
                ) from None
            raise LoadError("spec", f"{spec}() failed: TypeError: {one_line(err)}") from None
        except Exception as err:  # noqa: BLE001 - the user's factory failed
            raise LoadError(
                "spec", f"{spec}() failed: {type(err).__name__}: {one_line(err)}"
            ) from None

    if weights == "DEFAULT":
        raise LoadError("weights", f"DEFAULT is for torchvision and timm models, not {spec}")
    model = build(num_classes)
    if not callable(model):
        raise LoadError("spec", f"{spec}() returned a {type(model).__name__}, not a model")
    if weights is None:
        return model, None, None
    if not isinstance(model, nn.Module):
        raise LoadError("weights", f"cannot be loaded into {spec}(): it is not an nn.Module")
    sd, names = read_state_dict(weights)
    fit_state_dict(model, sd, str(weights), hint=class_count_hint(build, num_classes or 0)
                   if num_classes else None)  # fmt: skip
    return model, names, None


def _export(path: str, device: torch.device) -> nn.Module:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.load(path)
            if device.type != "cpu":
                from torch.export.passes import move_to_device_pass

                program = move_to_device_pass(program, device)
    except Exception as err:  # noqa: BLE001 - a damaged or foreign archive fails in many ways
        raise LoadError(
            "spec", f"{path}: cannot load the torch.export program ({type(err).__name__}: "
            f"{one_line(err)})"
        ) from None  # fmt: skip
    return Exported(program)


def _torchscript(path: str, device: torch.device) -> nn.Module:
    try:
        with warnings.catch_warnings():  # torch.jit.load's deprecation notice
            warnings.simplefilter("ignore")
            module = torch.jit.load(path, map_location=device)
    except Exception as err:  # noqa: BLE001
        raise LoadError(
            "spec", f"{path}: cannot load the TorchScript model ({type(err).__name__}: "
            f"{one_line(err)})"
        ) from None  # fmt: skip
    return Logits(module)


def _mean_std(normalize: object, auto: Any, spec: object) -> tuple[Any, Any] | None:
    if isinstance(normalize, str):
        choice = normalize.lower()
        if choice == "none":
            return None
        if choice == "imagenet":
            return IMAGENET_MEAN, IMAGENET_STD
        if choice == "auto":
            if auto == "imagenet":
                return IMAGENET_MEAN, IMAGENET_STD
            return auto
        raise LoadError(
            "normalize", f"must be 'auto', 'imagenet', 'none' or (mean, std); got {normalize!r}"
        )
    if normalize is None:
        return None
    if isinstance(normalize, (tuple, list)) and len(normalize) == 2:
        return normalize[0], normalize[1]
    raise LoadError(
        "normalize", f"must be 'auto', 'imagenet', 'none' or (mean, std); got {normalize!r}"
    )


# ------------------------------------------------------------------------------ the loader
def load_model(
    spec: str | os.PathLike | nn.Module | Callable[..., Any],
    weights: str | os.PathLike | None = None,
    num_classes: int | None = None,
    device: str | torch.device | None = None,
    *,
    normalize: str | tuple[Sequence[float], Sequence[float]] | None = "auto",
) -> tuple[nn.Module | Callable[..., Any], list[str] | None]:
    r"""Load a classifier from a name, a file or a factory; the module docstring lists the
    kinds of ``spec``.

    The model comes back in eval mode on ``device``, taking images in :math:`[0, 1]`: with
    ``normalize="auto"`` the source's own normalisation becomes its first layer
    (:class:`~captum_perturbmask.loaders.Normalize`: ImageNet's mean and std for torchvision,
    ``pretrained_cfg`` for timm, the saved image processor's for Hugging Face), so masked-off
    pixels are black and maps live in pixel space; exported, scripted and factory models are
    left as they are (put your normalisation in the model, or pass ``normalize``).

    Args:
        spec: The model (see above).
        weights: A local state-dict file, ``"DEFAULT"`` (torchvision's or timm's published
            weights, downloaded) or ``None`` (random initialisation for models built from
            code; the shipped weights for ``"digits"``).
        num_classes: Classes of the head to build, for weights of another head (torchvision
            default 1000).
        device: Where the model goes (default CPU).
        normalize: ``"auto"``, ``"imagenet"``, ``"none"`` (or ``None``), or ``(mean, std)``.

    Returns:
        ``(model, class_names)``: class names from the weights' metadata (torchvision's
        ``meta["categories"]`` with ``"DEFAULT"``, timm's ImageNet labels, a Hugging Face
        ``id2label``, a ``"class_names"`` entry of the checkpoint), else ``None``.

    Raises:
        LoadError: (a ``ValueError``, one line naming the argument) a name that is no model, a
            file that does not load, a factory that does not exist or fails, weights that are
            not a state dict or do not fit, an unknown device.

    Example:
        >>> model, names = load_model("resnet18", num_classes=3)
        >>> model(torch.rand(2, 3, 64, 64)).shape, names, type(model[0]).__name__
        (torch.Size([2, 3]), None, 'Normalize')
        >>> try:
        ...     load_model("resnet19")
        ... except LoadError as err:
        ...     print(err)
        `spec` 'resnet19' is not a known model; did you mean resnet18, ...
    """
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    kind = spec_kind(spec)
    num_classes = _check_num_classes(num_classes)
    dev = _device(device)
    if weights is not None and not isinstance(weights, (str, os.PathLike)):
        raise LoadError(
            "weights", f"must be a file path or 'DEFAULT', got {type(weights).__name__}"
        )
    if weights is not None and not str(weights).strip():
        raise LoadError("weights", "must be a file path or 'DEFAULT', got an empty string")
    from captum_perturbmask.loaders import hub

    auto: Any = None
    if kind == "module":
        model, names = spec, None
        if weights is not None:
            if weights == "DEFAULT" or not isinstance(model, nn.Module):
                raise LoadError(
                    "weights", f"{weights} cannot be loaded into a {type(spec).__name__}"
                )
            sd, names = read_state_dict(weights)
            fit_state_dict(model, sd, str(weights))
        if num_classes is not None:
            raise LoadError("num_classes", "cannot be combined with a model object")
    elif kind == "digits":
        model, names, auto = _digits(weights, num_classes)
    elif kind == "torchvision":
        model, names, auto = _torchvision(str(spec), weights, num_classes)
    elif kind == "factory":
        model, names, auto = _factory(str(spec), weights, num_classes)
    elif kind in ("export", "torchscript"):
        _no_weights(
            "exported" if kind == "export" else "TorchScript", str(spec), weights, num_classes
        )
        model = (_export if kind == "export" else _torchscript)(str(spec), dev)
        names = None
    elif kind == "timm":
        model, names, auto = hub.timm_model(str(spec)[5:], weights, num_classes)
    else:
        _no_weights("Hugging Face", str(spec), weights, num_classes)
        model, names, auto = hub.hf_model(str(spec)[3:])
    stats = _mean_std(normalize, auto, spec)
    if not isinstance(model, nn.Module):
        model = Logits(model)
    if stats is not None:
        model = nn.Sequential(Normalize(*stats), model)
    if kind != "export":
        model = model.to(dev)
    return model.eval(), names


def load_class_names(path: str | os.PathLike, argument: str = "class_names") -> list[str]:
    """Class names from a file: one name per line (blank lines skipped), or a JSON list of
    strings, or a JSON object mapping class indices to names (``{"0": "cat", ...}``).

    Raises:
        LoadError: the file does not exist, is not text, or holds no names.

    Example:
        >>> import tempfile
        >>> path = tempfile.mkdtemp() + "/names.txt"
        >>> _ = open(path, "w").write("cat\\ndog\\n")
        >>> load_class_names(path)
        ['cat', 'dog']
    """
    file = Path(path)
    if not file.is_file():
        raise LoadError(
            argument, f"{path} does not exist" + (" as a file" if file.exists() else "")
        )
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise LoadError(
            argument, f"{path}: cannot read it as UTF-8 text ({one_line(err)})"
        ) from None
    stripped = text.strip()
    if stripped[:1] in ("[", "{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as err:
            raise LoadError(argument, f"{path}: not valid JSON ({one_line(err)})") from None
        if isinstance(data, dict):
            try:
                order = sorted(data, key=int)
            except (TypeError, ValueError):
                raise LoadError(
                    argument, f"{path}: a JSON object must map class indices to names"
                ) from None
            if [int(k) for k in order] != list(range(len(order))):
                raise LoadError(argument, f"{path}: the class indices must be 0..{len(order) - 1}")
            data = [data[k] for k in order]
        return check_names(data, argument, f"{path}")
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise LoadError(argument, f"{path} holds no class names (one per line, or a JSON list)")
    return names


def probe_model(
    model: Callable[..., Any], inputs: Tensor, label: str = "the model", argument: str = "spec"
) -> Tensor:
    """Run ``model`` once on ``inputs`` and return its logits :math:`(B, K)`, or raise one
    :class:`LoadError` saying why the model cannot classify inputs of that shape.

    Raises:
        LoadError: the forward pass fails, or the output is not a :math:`(B, K)` tensor.

    Example:
        >>> probe_model(torch.nn.Linear(4, 2), torch.rand(3, 4)).shape
        torch.Size([3, 2])
        >>> try:
        ...     probe_model(torch.nn.Linear(4, 2), torch.rand(3, 5), "lin")
        ... except LoadError as err:
        ...     print(err)
        `spec` lin cannot take inputs of shape (3, 5) (mat1 and mat2 shapes cannot be ...)
    """
    shape = tuple(inputs.shape)
    try:
        with torch.no_grad():
            out = logits_of(model(inputs))
    except (MemoryError, torch.cuda.OutOfMemoryError):
        raise
    except Exception as err:  # noqa: BLE001 - the model's own error, told in one line
        text = one_line(err)
        if "alloc" in text.lower() or "out of memory" in text.lower():
            raise LoadError(
                argument, f"{label}: out of memory on inputs of shape {shape}"
            ) from None
        hint = ""
        fixed = getattr(_innermost(model), "input_shape", None)
        if fixed and any(d is not None for d in fixed[1:]):
            hint = f"; it was exported for inputs {tuple(fixed)} (None: any size)"
        elif len(shape) == 4 and shape[2] != shape[3]:
            hint = "; if the model needs square inputs, pad them (explain --pad)"
        raise LoadError(
            argument, f"{label} cannot take inputs of shape {shape} ({text}){hint}"
        ) from None
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != shape[0]:
        got = f"shape {tuple(out.shape)}" if isinstance(out, Tensor) else type(out).__name__
        raise LoadError(
            argument, f"{label} returned {got} for inputs {shape}, not logits ({shape[0]}, K)"
        )
    return out


def _innermost(model: Any) -> Any:
    while isinstance(model, nn.Sequential) and len(model):
        model = model[-1]
    return model
