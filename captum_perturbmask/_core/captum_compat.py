"""The one place that imports Captum's private helpers.

Captum's ``_utils`` are not public API; pinning ``captum>=0.9,<0.10`` and routing every
private import through this module keeps a Captum upgrade to a one-file change.
"""

from captum._utils.common import (
    _format_additional_forward_args,
    _format_output,
    _format_tensor_into_tuples,
    _is_tuple,
    _select_targets,
    _validate_target,
)
from captum._utils.typing import TargetType, TensorOrTupleOfTensorsGeneric

__all__ = [
    "TargetType",
    "TensorOrTupleOfTensorsGeneric",
    "_format_additional_forward_args",
    "_format_output",
    "_format_tensor_into_tuples",
    "_is_tuple",
    "_select_targets",
    "_validate_target",
]
