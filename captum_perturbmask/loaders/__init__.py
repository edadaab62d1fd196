"""Your model, your data: classifiers, weights, class names, images and datasets from names
and files, for the command line and for Python.

* :func:`load_model` - a torchvision name, a ``torch.export`` or TorchScript file,
  ``package.module:factory``, ``timm:NAME``, ``hf:FOLDER`` or the shipped ``digits`` model,
  with a state-dict file, in eval mode with its normalisation as the first layer; returns
  ``(model, class_names)``.
* :func:`load_class_names` - one name per line, or a JSON list.
* :func:`read_state_dict`, :func:`load_state_dict` - state-dict files, read with
  ``weights_only=True``.
* :func:`load_image`, :func:`find_images` - image files, folders and glob patterns.
* :class:`NpzDataset`, :class:`ImageFolderDataset` - datasets for
  :func:`~captum_perturbmask.evaluation.evaluate`.

Every failure is a :class:`LoadError` (a ``ValueError``) in one line that names the argument,
what came and what was expected.

Example:
    >>> from captum_perturbmask.loaders import load_model
    >>> model, class_names = load_model("digits")
    >>> type(model).__name__, class_names
    ('DigitsCNN', None)
"""

from __future__ import annotations

from captum_perturbmask._core.errors import LoadError
from captum_perturbmask.loaders.datasets import ImageFolderDataset, NpzDataset
from captum_perturbmask.loaders.images import find_images, load_image
from captum_perturbmask.loaders.models import (
    load_class_names,
    load_model,
    probe_model,
    spec_kind,
)
from captum_perturbmask.loaders.weights import load_state_dict, read_state_dict
from captum_perturbmask.loaders.wrappers import Exported, Logits, Normalize

__all__ = [
    "Exported",
    "ImageFolderDataset",
    "LoadError",
    "Logits",
    "Normalize",
    "NpzDataset",
    "find_images",
    "load_class_names",
    "load_image",
    "load_model",
    "load_state_dict",
    "probe_model",
    "read_state_dict",
    "spec_kind",
]
