"""Models of two model zoos, when they are installed: timm (``timm:NAME``) and Hugging Face
``transformers`` image classifiers saved in a local folder (``hf:FOLDER``), read offline."""

from __future__ import annotations

import difflib
import json
import warnings
from pathlib import Path
from typing import Any

from torch import nn

from captum_perturbmask._core.errors import LoadError, one_line
from captum_perturbmask.loaders.weights import class_count_hint, fit_state_dict, read_state_dict
from captum_perturbmask.loaders.wrappers import Logits

__all__ = ["hf_model", "timm_model"]


def _needs(package: str, spec: str) -> LoadError:
    return LoadError("spec", f"{spec} needs the {package} package: pip install {package}")


def timm_model(
    name: str, weights: Any, num_classes: int | None
) -> tuple[nn.Module, list[str] | None, Any]:
    """A timm model by name: random weights, a local state-dict file or ``"DEFAULT"`` (timm's
    pretrained weights, downloaded); returns ``(model, class_names, (mean, std))``."""
    try:
        import timm
    except ImportError:
        raise _needs("timm", f"timm:{name}") from None
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise LoadError("spec", f"timm:{name}: timm has no model {name!r}{hint}")
    kwargs: dict[str, Any] = {} if num_classes is None else {"num_classes": num_classes}

    def build(k: int | None) -> nn.Module:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return timm.create_model(
                name, pretrained=False, **({} if k is None else {"num_classes": k})
            )

    names = None
    if weights == "DEFAULT":
        try:
            model = timm.create_model(name, pretrained=True, **kwargs)
        except Exception as err:  # noqa: BLE001 - offline, or no pretrained weights
            raise LoadError(
                "weights",
                f"DEFAULT: cannot fetch timm's weights of {name} (internet needed): "
                f"{one_line(err)}",
            ) from None
        names = _timm_imagenet_names(model)
    else:
        model = build(num_classes)
        if weights is not None:
            sd, names = read_state_dict(weights)
            default = getattr(model, "num_classes", None) or 1000
            hint = class_count_hint(build, num_classes or default)
            fit_state_dict(model, sd, str(weights), hint=hint)
    cfg = getattr(model, "pretrained_cfg", None) or {}
    stats = (cfg["mean"], cfg["std"]) if "mean" in cfg and "std" in cfg else None
    return model, names, stats


def _timm_imagenet_names(model: nn.Module) -> list[str] | None:
    try:
        from timm.data import ImageNetInfo, infer_imagenet_subset

        subset = infer_imagenet_subset(model)
        if not subset:
            return None
        return [d.split(",")[0].strip() for d in ImageNetInfo(subset).label_descriptions()]
    except Exception:  # noqa: BLE001 - names are a nicety
        return None


def hf_model(folder: str) -> tuple[nn.Module, list[str] | None, Any]:
    """A ``transformers`` image classifier from a ``save_pretrained`` folder, offline; returns
    ``(model returning logits, class_names, (mean, std) or None)``."""
    spec = f"hf:{folder}"
    path = Path(folder)
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is not a folder"
        raise LoadError(
            "spec",
            f"{spec}: {folder} {what}; hf: takes a local folder written by save_pretrained "
            "(download a hub model first, e.g. with `hf download NAME --local-dir FOLDER`)",
        )
    if not (path / "config.json").is_file():
        raise LoadError(
            "spec", f"{spec}: {folder} has no config.json (not a save_pretrained folder)"
        )
    try:
        import transformers
    except ImportError:
        raise _needs("transformers", spec) from None
    from transformers.utils import logging

    bars = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()  # no "Loading weights" bar in a command's output
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = transformers.AutoModelForImageClassification.from_pretrained(
                str(path), local_files_only=True
            )
    except Exception as err:  # noqa: BLE001 - a foreign or damaged folder fails in many ways
        raise LoadError(
            "spec",
            f"{spec}: cannot load an image classifier ({type(err).__name__}: {one_line(err)})",
        ) from None
    finally:
        if bars:
            logging.enable_progress_bar()
    labels = getattr(model.config, "id2label", None) or {}
    names = None
    if labels and sorted(int(k) for k in labels) == list(range(len(labels))):
        ordered = [str(labels[k]) for k in sorted(labels, key=int)]
        if any(n != f"LABEL_{i}" for i, n in enumerate(ordered)):
            names = ordered
    return Logits(model, keyword="pixel_values"), names, _hf_stats(path)


def _hf_stats(path: Path) -> tuple[Any, Any] | None:
    """Mean and std of the folder's saved image processor (``preprocessor_config.json``)."""
    file = path / "preprocessor_config.json"
    if not file.is_file():
        return None
    try:
        cfg = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not cfg.get("do_normalize", True) or "image_mean" not in cfg or "image_std" not in cfg:
        return None
    mean, std = cfg["image_mean"], cfg["image_std"]
    if isinstance(mean, (int, float)):
        mean, std = [mean] * 3, [std] * 3
    return mean, std
