"""Evaluation metrics for saliency maps (insertion/deletion, ROAD, localisation, consistency)
and their aggregation over examples (means with intervals, paired differences)."""

from captum_perturbmask.metrics.aggregate import MeanCI, mean_ci, paired_difference
from captum_perturbmask.metrics.consistency import RunConsistency, average_ranks, run_consistency
from captum_perturbmask.metrics.localization import (
    box_iou,
    box_to_mask,
    pointing_game,
    saliency_box,
    saliency_mask,
    saliency_span,
    span_iou,
    span_to_mask,
)
from captum_perturbmask.metrics.perturbation_curves import (
    InsertionDeletion,
    deletion_auc,
    insertion_auc,
    insertion_deletion,
)
from captum_perturbmask.metrics.remove_and_debias import ROAD, noisy_linear_imputation, road

__all__ = [
    "ROAD",
    "InsertionDeletion",
    "MeanCI",
    "RunConsistency",
    "average_ranks",
    "box_iou",
    "box_to_mask",
    "deletion_auc",
    "insertion_auc",
    "insertion_deletion",
    "mean_ci",
    "noisy_linear_imputation",
    "paired_difference",
    "pointing_game",
    "road",
    "run_consistency",
    "saliency_box",
    "saliency_mask",
    "saliency_span",
    "span_iou",
    "span_to_mask",
]
