"""State-dict files: read one safely (:func:`read_state_dict`) and load it into a model
(:func:`load_state_dict`), with one clear :class:`~captum_perturbmask.loaders.LoadError`
when the file is not a state dict or does not fit.

A file is read with ``torch.load(..., weights_only=True)`` (a pickle that would run code is
refused, never executed), or with ``safetensors`` for ``.safetensors`` files when that
package is installed. A ``{"state_dict": ..., "class_names": [...]}`` checkpoint carries the
class names next to the weights.
"""

from __future__ import annotations

import codecs
import os
import pickle
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from captum_perturbmask._core.errors import LoadError, one_line

__all__ = [
    "check_names",
    "class_count_hint",
    "fit_state_dict",
    "load_state_dict",
    "read_state_dict",
    "sniff_file",
]

#: Keys of a checkpoint mapping that may hold the state dict itself.
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model")


def _text_kind(head: bytes) -> str | None:
    """``"JSON"`` or ``"text"`` when ``head`` decodes as UTF-8 text, else ``None``."""
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return None
    if "\x00" in text:
        return None
    return "JSON" if text.lstrip()[:1] in ("{", "[") else "text"


def sniff_file(path: str | os.PathLike) -> str:
    """What a file holds, from its first bytes and, for a zip archive, its member names.

    Returns one of ``"state_dict"`` (a ``torch.save`` zip archive or legacy pickle),
    ``"export"`` (a ``torch.export.save`` program), ``"torchscript"`` (``torch.jit.save``),
    ``"safetensors"``, ``"empty"``, ``"text"``, ``"JSON"``, ``"zip"`` (another zip archive)
    or ``"unknown"``.

    Example:
        >>> import tempfile, torch
        >>> path = tempfile.mkdtemp() + "/w.pt"
        >>> torch.save({"w": torch.zeros(2)}, path)
        >>> sniff_file(path)
        'state_dict'
    """
    import zipfile

    with open(path, "rb") as fh:
        head = fh.read(4096)
    if not head:
        return "empty"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):
            return "unknown"
        tails = {name.split("/", 1)[-1] for name in names}
        if any(t.startswith("models/") and t.endswith(".json") for t in tails) or any(
            "serialized_exported_program" in t for t in tails
        ):
            return "export"
        if "constants.pkl" in tails or any(t.startswith("code/") for t in tails):
            return "torchscript"
        if "data.pkl" in tails:
            return "state_dict"
        return "zip"
    if head[:1] == b"\x80":  # a pickle (torch.save's legacy format)
        return "state_dict"
    if len(head) > 10 and head[8:10] == b'{"':
        return "safetensors"
    return _text_kind(head) or "unknown"


_NOT_A_CHECKPOINT = {
    "empty": "it is empty",
    "text": "it holds text",
    "JSON": "it holds JSON",
    "export": "it is a torch.export program (pass it as the model, not as its weights)",
    "torchscript": "it is a TorchScript model (pass it as the model, not as its weights)",
    "zip": "it is a zip archive, but not one torch.save writes",
    "unknown": "it is neither a zip archive nor a pickle, the two formats of torch.save",
}


def _read_safetensors(file: Path, argument: str) -> Mapping[str, Any]:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise LoadError(
            argument,
            f"{file} is a safetensors file; pip install safetensors to read it, or save the "
            "weights with torch.save(model.state_dict(), path)",
        ) from None
    try:
        return load_file(str(file), device="cpu")
    except Exception as err:  # noqa: BLE001 - a damaged header fails in many ways
        raise LoadError(
            argument, f"{file}: cannot read the safetensors file ({one_line(err)})"
        ) from None


def _read_torch(file: Path, argument: str) -> Any:
    try:  # weights_only: a pickle that would run code is refused, never executed
        with warnings.catch_warnings():  # e.g. "pickle protocol 100" of a damaged file
            warnings.simplefilter("ignore")
            return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Unsupported global" in str(err):
            raise LoadError(
                argument,
                f"{file} is not a plain state dict (it holds pickled objects, e.g. a whole model, "
                "which are not loaded); save model.state_dict() instead",
            ) from None
        raise LoadError(
            argument, f"{file}: cannot read weights: not a file saved with torch.save (corrupt?)"
        ) from None
    except Exception as err:  # noqa: BLE001 - a damaged file fails in many ways in the unpickler
        raise LoadError(
            argument,
            f"{file}: cannot read weights: not a file saved with torch.save ({one_line(err)})",
        ) from None


def read_state_dict(
    path: str | os.PathLike, argument: str = "weights"
) -> tuple[dict[str, Tensor], list[str] | None]:
    """Read a state-dict file: the tensors by name, and the class names saved with them.

    Accepts ``torch.save(model.state_dict(), path)``, a checkpoint mapping that holds it under
    ``"state_dict"``, ``"model_state_dict"`` or ``"model"`` (and optionally ``"class_names"``,
    a list of strings), a state dict saved from ``nn.DataParallel`` (the ``module.`` prefix is
    removed) and, with ``safetensors`` installed, a ``.safetensors`` file.

    Args:
        path: The file.
        argument: The name of the argument in error messages.

    Returns:
        ``(state_dict, class_names)``; ``class_names`` is ``None`` when the file has none.

    Raises:
        LoadError: the file does not exist, is not a checkpoint (text, JSON, empty, an exported
            or scripted model, ...), holds pickled objects other than tensors, or holds no
            mapping of names to tensors.

    Example:
        >>> import tempfile, torch
        >>> path = tempfile.mkdtemp() + "/head.pt"
        >>> torch.save({"state_dict": torch.nn.Linear(2, 3).state_dict(),
        ...             "class_names": ["cat", "dog", "owl"]}, path)
        >>> sd, names = read_state_dict(path)
        >>> sorted(sd), names
        (['bias', 'weight'], ['cat', 'dog', 'owl'])
    """
    from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

    file = Path(path)
    if not file.is_file():
        where = "" if not file.exists() else " as a file"
        raise LoadError(argument, f"{path} does not exist{where}")
    kind = sniff_file(file)
    if kind == "safetensors":
        obj: Any = _read_safetensors(file, argument)
    elif kind == "state_dict":
        obj = _read_torch(file, argument)
    else:
        raise LoadError(
            argument,
            f"{path} is not a torch.save checkpoint: {_NOT_A_CHECKPOINT[kind]}; save the weights "
            "with torch.save(model.state_dict(), path)",
        )
    names = None
    if isinstance(obj, Mapping):
        if "class_names" in obj:
            names = check_names(obj["class_names"], argument, f"{path}'s 'class_names'")
            obj = {k: v for k, v in obj.items() if k != "class_names"}
        for key in STATE_DICT_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner:
                obj = inner
                break
    if (
        not isinstance(obj, Mapping)
        or not obj
        or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())
    ):
        raise LoadError(
            argument,
            f"{path} is not a state dict (a mapping of parameter names to tensors, as saved by "
            f"torch.save(model.state_dict(), ...)); it holds a {type(obj).__name__}",
        )
    sd = dict(obj)
    consume_prefix_in_state_dict_if_present(sd, "module.")  # saved from DataParallel
    return sd, names


def check_names(names: object, argument: str, what: str) -> list[str]:
    """``names`` as a list of non-empty strings, or a :class:`LoadError` naming ``what``."""
    if isinstance(names, (str, bytes)) or not isinstance(names, (list, tuple)):
        raise LoadError(argument, f"{what} must be a list of strings, got {type(names).__name__}")
    bad = [n for n in names if not isinstance(n, str) or not n.strip()]
    if bad or not names:
        got = "an empty list" if not names else f"{bad[0]!r}"
        raise LoadError(argument, f"{what} must be a list of non-empty strings, got {got}")
    return [n.strip() for n in names]


def _some(keys: list[str]) -> str:
    return ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")


def fit_state_dict(
    model: nn.Module,
    state_dict: Mapping[str, Tensor],
    label: str,
    argument: str = "weights",
    hint: Callable[[Mapping[str, Tensor], Mapping[str, Tensor]], str] | None = None,
) -> None:
    """Load ``state_dict`` into ``model`` strictly, or raise one :class:`LoadError` that lists
    the missing keys, unexpected keys and shape mismatches (a few of each).

    Args:
        model: The model.
        state_dict: Its weights.
        label: How the weights are named in the message (e.g. ``"w.pt"`` or the model).
        argument: The name of the argument in error messages.
        hint: ``hint(own, state_dict) -> text`` added to a shape-mismatch message (e.g. the
            class count of the file's head).

    Raises:
        LoadError: the weights do not fit the model.

    Example:
        >>> try:
        ...     fit_state_dict(torch.nn.Linear(2, 3), torch.nn.Linear(2, 4).state_dict(), "w.pt")
        ... except LoadError as err:
        ...     print(err)
        `weights` w.pt does not fit the model: 2 shape mismatches (weight: file (4, 2) vs ...)
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [k for k in own if k in state_dict and state_dict[k].shape != own[k].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys ({_some(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys ({_some(unexpected)})")
    if mismatched:
        shapes = [
            f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
            for k in mismatched
        ]
        problems.append(f"{len(mismatched)} shape mismatches ({_some(shapes)})")
    if problems:
        extra = (
            hint(own, state_dict) if hint and mismatched and not missing and not unexpected else ""
        )
        raise LoadError(argument, f"{label} does not fit the model: " + "; ".join(problems) + extra)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:  # e.g. dtype trouble not caught above
        raise LoadError(argument, f"{label} does not fit the model: {one_line(err)}") from None


def load_state_dict(
    model: nn.Module, path: str | os.PathLike, argument: str = "weights"
) -> list[str] | None:
    """Read a state-dict file (:func:`read_state_dict`) and load it into ``model`` strictly.

    Returns:
        The class names saved with the weights, or ``None``.

    Raises:
        LoadError: the file cannot be read or does not fit the model.

    Example:
        >>> import tempfile
        >>> path = tempfile.mkdtemp() + "/w.pt"
        >>> torch.save(torch.nn.Linear(2, 3).state_dict(), path)
        >>> load_state_dict(torch.nn.Linear(2, 3), path) is None
        True
    """
    sd, names = read_state_dict(path, argument)
    fit_state_dict(model, sd, str(path), argument)
    return names


def class_count_hint(
    build: Callable[[int], nn.Module], num_classes: int
) -> Callable[[Any, Any], str]:
    """A :func:`fit_state_dict` hint: the class count of the file's head when that is the only
    difference (found by building the model on the meta device with one class more and seeing
    which parameter shapes change, and where)."""

    def hint(own: Any, sd: Any) -> str:
        try:
            with torch.device("meta"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                other = build(num_classes + 1).state_dict()
        except Exception:  # noqa: BLE001 - an architecture that cannot be built on meta: no hint
            return ""
        counts = set()
        for key, param in own.items():
            mine, theirs = tuple(param.shape), tuple(sd[key].shape)
            if mine == theirs:
                continue
            if key not in other or len(theirs) != len(mine) or len(other[key].shape) != len(mine):
                return ""
            head = [
                d for d, (a, b) in enumerate(zip(mine, other[key].shape, strict=True)) if a != b
            ]
            if not head or any(theirs[d] != mine[d] for d in range(len(mine)) if d not in head):
                return ""
            counts.update(theirs[d] for d in head)
        if len(counts) != 1 or (count := counts.pop()) < 2:
            return ""
        return f"; the file's head has {count} classes: pass `num_classes` {count}"

    return hint
