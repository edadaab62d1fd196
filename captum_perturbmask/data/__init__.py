"""Embedded default data and weights (offline): digits-in-clutter, a CNN and a small GAN."""
