"""Evaluation metrics for saliency maps (insertion/deletion, localisation, consistency)."""

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

__all__ = [
    "InsertionDeletion",
    "RunConsistency",
    "average_ranks",
    "box_iou",
    "box_to_mask",
    "deletion_auc",
    "insertion_auc",
    "insertion_deletion",
    "pointing_game",
    "run_consistency",
    "saliency_box",
    "saliency_mask",
    "saliency_span",
    "span_iou",
    "span_to_mask",
]
