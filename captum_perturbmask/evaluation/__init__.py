"""Evaluation of saliency methods: a whole dataset (:func:`~.evaluate`) or one batch
(:func:`~.compare`), with the same runner, the same arguments and one result type.

* :mod:`~captum_perturbmask.evaluation.methods` - the method registry (:func:`~.default_methods`,
  :func:`~.register_method`);
* :mod:`~captum_perturbmask.evaluation.scoring` - the metric registry and the scoring of one
  batch (:func:`~.register_metric`);
* :mod:`~captum_perturbmask.evaluation.results` - :class:`~.EvaluationResult` and
  :func:`~.summarize`;
* :mod:`~captum_perturbmask.evaluation.records` - the JSON Lines records (:func:`~.read_records`);
* :mod:`~captum_perturbmask.evaluation.data` - dataset items through a ``DataLoader``;
* :mod:`~captum_perturbmask.evaluation.distributed` - one process or many (``torchrun``).

Example:
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 3)).eval()
    >>> result = compare(model, torch.rand(2, 3, 4, 4), ["Occlusion"], budget=4, seeds=(0,))
    >>> result.summary[0]["method"], result.maps["Occlusion"].shape
    ('Occlusion', torch.Size([2, 3, 4, 4]))
"""

from captum_perturbmask.evaluation.compare import compare
from captum_perturbmask.evaluation.methods import (
    METHODS,
    AttributionFn,
    Method,
    MethodSetting,
    default_methods,
    register_method,
)
from captum_perturbmask.evaluation.records import read_records
from captum_perturbmask.evaluation.results import EvaluationResult, KeptExamples, summarize
from captum_perturbmask.evaluation.run import evaluate
from captum_perturbmask.evaluation.scoring import (
    METRICS,
    Column,
    Metric,
    MetricBatch,
    register_metric,
)

__all__ = [
    "METHODS",
    "METRICS",
    "AttributionFn",
    "Column",
    "EvaluationResult",
    "KeptExamples",
    "Method",
    "MethodSetting",
    "Metric",
    "MetricBatch",
    "compare",
    "default_methods",
    "evaluate",
    "read_records",
    "register_method",
    "register_metric",
    "summarize",
]
