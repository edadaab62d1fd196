"""Generative companions: the distribution of acceptable variations (Problem 2)."""
