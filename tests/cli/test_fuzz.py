"""Fuzzing the command line in-process: random files (garbage named like images, weights,
exported programs and arrays), ``.npz`` arrays of random shapes and dtypes, random option
values. Every run either succeeds or ends in one ``error:`` line with exit status 2: never a
traceback, never part of an output folder."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from captum_perturbmask.cli import main

from ..loaders import tinynet
from ._util import one_error_line

TINY = f"{Path(tinynet.__file__)}:tiny_factory"
N_CASES = 64


def _garbage(rng: random.Random, path: Path) -> Path:
    """Random bytes, sometimes behind a real format's magic number."""
    head = rng.choice([b"", b"\x89PNG\r\n\x1a\n", b"PK\x03\x04", b"\x80\x02", b"\x93NUMPY", b"{"])
    path.write_bytes(head + rng.randbytes(rng.randint(0, 300)))
    return path


def _image(rng: random.Random, path: Path) -> Path:
    from PIL import Image

    h, w = rng.randint(1, 40), rng.randint(1, 40)
    pixels = np.random.default_rng(rng.randint(0, 2**31)).integers(0, 255, (h, w, 3), np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _npz(rng: random.Random, path: Path) -> Path:
    g = np.random.default_rng(rng.randint(0, 2**31))
    ndim = rng.choice([1, 2, 3, 4, 4, 4, 5])
    shape = [rng.choice([0, 1, 2, 3]) if d == 0 else rng.choice([0, 1, 3, 8, 12]) for d in
             range(ndim)]  # fmt: skip
    if rng.random() < 0.6:
        shape = [rng.randint(1, 3), 3, rng.randint(8, 14), rng.randint(8, 14)]
    dtype = rng.choice(
        ["float32"] * 4 + ["float64", "float16", "int64", "uint8", "bool", "complex64"]
    )
    inputs = (g.standard_normal(shape) * rng.choice([1, 100])).astype(dtype)
    if dtype.startswith("float") and inputs.size and rng.random() < 0.3:
        inputs.flat[0] = rng.choice([np.nan, np.inf])
    arrays = {"inputs": inputs}
    n = shape[0] if shape else 0
    if rng.random() < 0.6:
        low, high = (0, 3) if rng.random() < 0.7 else (-1, 5)
        arrays["targets"] = g.integers(low, high, rng.choice([n, n, n + 1])).astype(
            rng.choice(["int64", "float32", "uint8"]))  # fmt: skip
    if rng.random() < 0.3:
        arrays["boxes"] = g.random((n, rng.choice([2, 4]))) * 8
    if rng.random() < 0.1:
        arrays = {"other": inputs}
    np.savez(path, **arrays)
    return path


def _value(rng: random.Random, kind: str) -> str:
    """A random value for an option: sometimes sensible, sometimes not."""
    junk = ["", "-1", "0", "abc", "1e9", "nan", "3.5", "99999999999999999999", " 2", "--"]
    good = {
        "budget": ["1", "4", "8"], "size": ["8", "16", "20"], "batch": ["1", "2", "5"],
        "seed": ["0", "7"], "device": ["cpu"] * 6 + ["cuda:7", "tpu", "meta"],
        "method": ["perturbmask", "rise", "occlusion", "gradcam", "LIME", "nope"],
        "target": ["0", "2", "3", "-1", "ant", "zebra"],
        "normalize": ["auto", "none", "imagenet", "0.5,0.5,0.5/0.2,0.2,0.2", "1/0", "x"],
        "reference": ["default", "mean", "0.5", "inf", "grey"], "threshold": ["0.5", "1.5"],
        "metrics": ["deletion", "insertion", "auc"], "classes": ["3", "5", "1"],
    }[kind]  # fmt: skip
    return rng.choice(good) if rng.random() < 0.92 else rng.choice(junk)


def _explain_argv(rng: random.Random, root: Path) -> list[str]:
    images = []
    for i in range(rng.randint(1, 3)):
        suffix = rng.choice([".png", ".jpg", ".png"])
        maker = _image if rng.random() < 0.7 else _garbage
        images.append(str(maker(rng, root / f"img{i}{suffix}")))
    if rng.random() < 0.2:
        images = [str(root), str(root / "*.png")][rng.randint(0, 1) :]
    argv = ["explain", *images, "--model", TINY]
    if rng.random() < 0.25:
        argv[-1] = str(_garbage(rng, root / rng.choice(["m.pt2", "m.pt", "m.ts"])))
    options = {"--budget": "budget", "--size": "size", "--batch-size": "batch",
               "--forward-batch-size": "batch", "--seed": "seed", "--device": "device",
               "--method": "method", "--target": "target", "--normalize": "normalize"}  # fmt: skip
    for flag, kind in options.items():
        if rng.random() < (0.9 if flag in ("--budget", "--size") else 0.25):
            argv += [flag, _value(rng, kind)]
    if "--budget" not in argv:
        argv += ["--budget", "4"]
    if "--size" not in argv:
        argv += ["--size", "16"]
    if rng.random() < 0.2:
        argv += ["--weights", str(_garbage(rng, root / rng.choice(["w.pt", "w.txt"])))]
    if rng.random() < 0.2:
        names = root / "names.txt"
        names.write_bytes(rng.choice([b"ant\nbee\ncow\n", b"[1, 2]", b"\xff\xfe", b"", b"a\nb"]))
        argv += ["--class-names", str(names)]
    for flag in ("--pad", "--skip-errors"):
        if rng.random() < 0.3:
            argv.append(flag)
    return argv


def _evaluate_argv(rng: random.Random, root: Path) -> list[str]:
    data = _npz(rng, root / "d.npz") if rng.random() < 0.8 else _garbage(rng, root / "d.npz")
    argv = ["evaluate", "--data", str(data), "--model", rng.choice([TINY, TINY, "digits"])]
    argv += ["--methods", _value(rng, "method"), "--budget", _value(rng, "budget")]
    options = {"--batch-size": "batch", "--seed": "seed", "--device": "device",
               "--reference": "reference", "--box-threshold": "threshold",
               "--metrics": "metrics", "--normalize": "normalize",
               "--num-classes": "classes"}  # fmt: skip
    for flag, kind in options.items():
        if rng.random() < 0.2:
            argv += [flag, _value(rng, kind)]
    for flag in ("--predicted", "--skip-errors"):
        if rng.random() < 0.3:
            argv.append(flag)
    return argv


@pytest.mark.parametrize("case", range(N_CASES))
def test_random_command_lines(case: int, tmp_path: Path, capsys) -> None:
    rng = random.Random(case)
    root = tmp_path / "inputs"
    root.mkdir()
    argv = (_explain_argv if case % 2 == 0 else _evaluate_argv)(rng, root)
    out = tmp_path / "out"
    rc = main([*argv, "--out", str(out)])
    if rc == 0:
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err
        assert out.is_dir() and any(out.iterdir())
        assert not [p for p in out.rglob("*") if p.name.endswith(".part")]  # nothing staged
        return
    one_error_line(rc, capsys)
    assert not out.exists() or not any(out.iterdir()), sorted(out.rglob("*"))
