"""The tests must exercise the installed package, not the source tree."""

import sysconfig
from pathlib import Path

import captum_perturbmask


def test_imported_from_site_packages() -> None:
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    here = Path(captum_perturbmask.__file__).resolve()
    assert site in here.parents, f"captum_perturbmask imported from {here}, not from {site}"
