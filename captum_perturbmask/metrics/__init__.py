"""Evaluation metrics for saliency maps (insertion/deletion, localisation, consistency)."""
