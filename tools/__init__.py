"""Maintainer tools of captum-perturbmask, kept out of the installed package.

Run them from the repository root (``python -m tools.<name>``); they import the package
(installed or on ``PYTHONPATH``), the package never imports them.
"""
