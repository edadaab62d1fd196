"""``python -m captum_perturbmask``: the ``captum-perturbmask`` command line."""

from captum_perturbmask.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
