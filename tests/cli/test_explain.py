"""``captum-perturbmask explain``: map in the image's own pixels, hardened inputs and outputs,
one-line errors (all offline)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from captum_perturbmask.cli import main
from captum_perturbmask.loaders import images as images_module

from ._util import is_png, one_error_line, png_header

FAST = ["--model", "resnet18", "--size", "32", "--budget", "4"]


@pytest.mark.parametrize(
    ("image", "extra"),
    [("image", ["--method", "perturbmask"]), ("jpeg", ["--method", "rise", "--target", "3"])],
)
def test_explain_writes_map_and_overlay(
    files: dict[str, Path], tmp_path: Path, capsys, image: str, extra: list[str]
) -> None:
    out = tmp_path / "explained"
    argv = ["explain", str(files[image]), "--model", "resnet18", "--weights", str(files["weights"])]
    argv += ["--size", "32", "--budget", "16", "--out", str(out), *extra]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert "target: " in stdout and "confidence: " in stdout
    assert "17 forward passes" in stdout  # the budget and one clean pass, counted
    if "--target" in extra:
        assert "target: 3" in stdout
    assert is_png(out / "saliency.png")
    saliency = torch.load(out / "saliency.pt", weights_only=True)
    assert isinstance(saliency, torch.Tensor) and saliency.shape == (32, 32)
    assert bool(torch.isfinite(saliency).all())
    assert sorted(p.name for p in out.iterdir()) == ["saliency.png", "saliency.pt"]


class _RightStrip(nn.Module):
    """Class 0 is the brightness of the rightmost eighth of the image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        strip = x[..., -max(1, x.shape[-1] // 8) :].mean((1, 2, 3))
        return torch.stack([4 * strip, torch.zeros_like(strip)], dim=1)


def test_no_crop_map_in_image_coordinates(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 40x96 image is resized to 16x38, not cropped; its evidence (the right edge, which a
    centre crop would cut off) is where the saved 40x96 map is highest."""
    import torchvision.models
    from PIL import Image

    pixels = torch.full((40, 96, 3), 40, dtype=torch.uint8)
    pixels[:, -12:] = 255  # bright right edge: the evidence of class 0
    path = tmp_path / "wide.png"
    Image.fromarray(pixels.numpy()).save(path)
    monkeypatch.setattr(torchvision.models, "get_model", lambda name, **kw: _RightStrip())
    out = tmp_path / "out"
    argv = ["explain", str(path), "--model", "resnet18", "--size", "16", "--budget", "256"]
    assert main([*argv, "--target", "0", "--method", "rise", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "resized 40x96 -> 16x38" in stdout and "nothing cropped" in stdout
    assert "mean (0.485, 0.456, 0.406)" in stdout and "40x96" in stdout
    saliency = torch.load(out / "saliency.pt", weights_only=True)
    assert saliency.shape == (40, 96)
    column = saliency.mean(0)
    assert column[-8:].mean() > column[:80].max()  # highest on the right edge


def test_pad_fits_a_square_model(tmp_path: Path, capsys, monkeypatch) -> None:
    """``--pad``: the model sees a square; the map is cut back to the image and its size."""
    import torchvision.models

    seen = []

    class Square(_RightStrip):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(tuple(x.shape[-2:]))
            return super().forward(x)

    from PIL import Image

    path = tmp_path / "wide.png"
    Image.fromarray(torch.zeros(20, 50, 3, dtype=torch.uint8).numpy()).save(path)
    monkeypatch.setattr(torchvision.models, "get_model", lambda name, **kw: Square())
    argv = ["explain", str(path), "--model", "resnet18", "--size", "24", "--pad", "--budget", "4"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 0
    assert set(seen) == {(24, 24)}
    assert "padded to 24x24" in capsys.readouterr().out
    assert torch.load(tmp_path / "out" / "saliency.pt", weights_only=True).shape == (20, 50)


def test_explain_without_weights_warns(files: dict[str, Path], tmp_path: Path, capsys) -> None:
    argv = ["explain", str(files["image"]), "--model", "resnet18", "--size", "32"]
    assert main([*argv, "--budget", "4", "--method", "rise", "--out", str(tmp_path)]) == 0
    assert "warning: no --weights given" in capsys.readouterr().err


def test_data_parallel_prefix_is_removed(files: dict[str, Path], tmp_path: Path, capsys) -> None:
    argv = ["explain", str(files["image"]), *FAST, "--weights", str(files["parallel_pt"])]
    assert main([*argv, "--out", str(tmp_path)]) == 0


def test_explain_default_weights_offline(
    files: dict[str, Path], tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--weights DEFAULT`` without internet fails in one line; with weights, names the class."""
    import urllib.error

    import torchvision.models

    real = torchvision.models.get_model

    def no_network(name: str, **kwargs):
        if kwargs.get("weights") == "DEFAULT":
            raise urllib.error.URLError("Temporary failure in name resolution")
        return real(name, **kwargs)

    monkeypatch.setattr(torchvision.models, "get_model", no_network)
    argv = ["explain", str(files["image"]), "--model", "resnet18", "--weights", "DEFAULT"]
    argv += ["--size", "32", "--budget", "4", "--out", str(tmp_path)]
    one_error_line(main(argv), capsys, "cannot fetch the default weights")
    one_error_line(main([*argv, "--num-classes", "10"]), capsys, "cannot be combined")

    def cached(name: str, **kwargs):  # stands in for weights already in the torch hub cache
        return real(name, weights=None)

    monkeypatch.setattr(torchvision.models, "get_model", cached)
    assert main([*argv, "--target", "207"]) == 0
    assert "target: 207 (golden retriever)" in capsys.readouterr().out
    assert is_png(tmp_path / "saliency.png")


# --------------------------------------------------------------------------------- errors
ERRORS = {
    "missing image": (["explain", "{root}/nope.png"], "does not exist"),
    "corrupt image": (["explain", "{garbage_png}"], "cannot read image"),
    "truncated image": (["explain", "{truncated_png}"], "cannot read image"),
    "pattern of nothing": (["explain", "{root}/nowhere/*.png"], "matches nothing"),
    "folder without images": (["explain", "{root}/sub"], "without image files"),
    "unknown model": (["explain", "{image}", "--model", "resnet19"], "did you mean resnet18"),
    "missing weights": (["explain", "{image}", "--weights", "{root}/nope.pt"], "does not exist"),
    "corrupt weights": (["explain", "{image}", "--weights", "{garbage_pt}"], "cannot read weights"),
    "text weights": (["explain", "{image}", "--weights", "{text_pt}"], "it holds text"),
    "hello weights": (["explain", "{image}", "--weights", "{hello_pt}"], "it holds text"),
    "json weights": (["explain", "{image}", "--weights", "{json_pt}"], "it holds JSON"),
    "empty weights": (["explain", "{image}", "--weights", "{empty_pt}"], "it is empty"),
    "not a state dict": (["explain", "{image}", "--weights", "{list_pt}"], "not a state dict"),
    "pickled module": (["explain", "{image}", "--weights", "{module_pt}"], "state_dict()"),
    "missing keys": (["explain", "{image}", "--weights", "{missing_pt}"], "2 missing keys"),
    "head of 10": (["explain", "{image}", "--weights", "{head10_pt}"], "--num-classes 10"),
    "target too big": (["explain", "{image}", "--weights", "{weights}", "--target", "1000"], "out"),
    "negative target": (["explain", "{image}", "--weights", "{weights}", "--target", "-1"], "out"),
    "out is a file": (["explain", "{image}", "--out", "{a_file}"], "not a directory"),
    "too small for inception": (
        ["explain", "{image}", "--model", "inception_v3"],
        "pass --size 75 or more",
    ),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_explain_errors_are_one_line(files: dict[str, Path], tmp_path: Path, capsys, case) -> None:
    template, words = ERRORS[case]
    names = {k: str(v) for k, v in files.items()}
    argv = [arg.format(**names) for arg in template]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    if "--model" not in argv:
        argv += ["--model", "resnet18"]
    argv += ["--size", "32", "--budget", "4"]
    line = one_error_line(main(argv), capsys, words)
    assert not (tmp_path / "out" / "saliency.pt").exists()
    assert "Error:" not in line and "IndexError" not in line


@pytest.mark.parametrize("weights", ["missing_pt", "stem_pt"])
def test_num_classes_hint_only_for_the_class_count(
    files: dict[str, Path], tmp_path: Path, capsys, weights: str
) -> None:
    """Missing keys or a stem of another shape are not a class-count problem: no hint."""
    argv = ["explain", str(files["image"]), *FAST, "--weights", str(files[weights])]
    line = one_error_line(main([*argv, "--out", str(tmp_path)]), capsys, "does not fit")
    assert "--num-classes" not in line


def test_num_classes_fixes_the_head(files: dict[str, Path], tmp_path: Path, capsys) -> None:
    argv = ["explain", str(files["image"]), *FAST, "--weights", str(files["head10_pt"])]
    assert main([*argv, "--num-classes", "10", "--out", str(tmp_path)]) == 0
    assert int(capsys.readouterr().out.split("target: ")[1].split()[0]) < 10


class _Payload:
    """Unpickling this runs code: it would create the file ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


@pytest.mark.parametrize("fmt", ["torch.save", "pickle"])
def test_malicious_pickle_is_refused_unexecuted(
    files: dict[str, Path], tmp_path: Path, capsys, fmt: str
) -> None:
    marker = tmp_path / "pwned"
    weights = tmp_path / "evil.pt"
    payload = {"fc.weight": _Payload(marker)}
    if fmt == "torch.save":
        torch.save(payload, weights)
    else:
        weights.write_bytes(pickle.dumps(payload, protocol=2))
    argv = ["explain", str(files["image"]), *FAST, "--weights", str(weights)]
    one_error_line(main([*argv, "--out", str(tmp_path / "out")]), capsys, str(weights))
    assert not marker.exists()


# ------------------------------------------------------------------------------ images
def test_image_over_the_pixel_cap_is_refused_before_decoding(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An 8000x8000 header (64 megapixels, below PIL's own bomb limit) is refused by size."""
    path = tmp_path / "big.png"
    path.write_bytes(png_header(8000, 8000))
    argv = ["explain", str(path), *FAST, "--out", str(tmp_path / "out")]
    one_error_line(main(argv), capsys, "8000x8000", "megapixels", "downscale")


@pytest.mark.parametrize("side", [13000, 20000])
def test_decompression_bomb_is_refused(tmp_path: Path, capsys, side: int) -> None:
    """13000x13000 (PIL warns: 4.5 GB if decoded) and 20000x20000 (PIL refuses): one line."""
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header(side, side))
    argv = ["explain", str(path), *FAST, "--out", str(tmp_path / "out")]
    one_error_line(main(argv), capsys, "refusing image", "megapixels")


def test_pixel_cap_is_a_module_constant(files, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(images_module, "MAX_PIXELS", 32 * 32 - 1)
    argv = ["explain", str(files["image"]), *FAST, "--out", str(tmp_path / "out")]
    one_error_line(main(argv), capsys, "32x32")


# ------------------------------------------------------------------------------ outputs
def test_directory_named_like_an_output(files: dict[str, Path], tmp_path: Path, capsys) -> None:
    """``saliency.pt`` is a directory: one line, and no saliency.png left behind."""
    (tmp_path / "saliency.pt").mkdir()
    argv = ["explain", str(files["image"]), *FAST, "--out", str(tmp_path)]
    one_error_line(main(argv), capsys, "saliency.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saliency.pt"]


def test_unwritable_out(files: dict[str, Path], tmp_path: Path, capsys) -> None:
    """An --out under a regular file cannot be created (for root too): one line, nothing
    written."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    argv = ["explain", str(files["image"]), *FAST, "--out", str(blocker / "out")]
    one_error_line(main(argv), capsys, "cannot write to --out", "Not a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]
    assert blocker.read_text() == "not a folder"


def test_device_option(files: dict[str, Path], tmp_path: Path, capsys) -> None:
    """--device cpu runs as without it; an absent device is refused before any work."""
    argv = ["explain", str(files["image"]), *FAST, "--out", str(tmp_path / "cpu")]
    assert main([*argv, "--device", "cpu"]) == 0
    capsys.readouterr()
    saliency = torch.load(tmp_path / "cpu" / "saliency.pt", weights_only=True)
    assert saliency.device.type == "cpu" and saliency.shape == (32, 32)
    argv[-1] = str(tmp_path / "absent")
    line = one_error_line(main([*argv, "--device", "cuda:99"]), capsys, "--device", "cuda:99")
    assert "see 'captum-perturbmask explain --help'" in line
    assert not (tmp_path / "absent").exists()


def test_torch_save_failure_writes_nothing(
    files: dict[str, Path], tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failing write of saliency.pt (disk full) leaves no saliency.png and no temporary file."""
    import builtins

    from captum_perturbmask.cli import _common

    real = builtins.open

    def full_disk(path, mode="r", *args, **kwargs):
        if "x" in mode and str(path).endswith("saliency.pt"):
            raise OSError(28, "No space left on device")
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(_common, "open", full_disk, raising=False)
    argv = ["explain", str(files["image"]), *FAST, "--out", str(tmp_path)]
    one_error_line(main(argv), capsys, "saliency.pt", "No space left")
    assert not any(tmp_path.iterdir())


def test_memory_error_does_not_ask_for_a_larger_size(
    files: dict[str, Path], tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hint about --size points the right way: smaller when memory runs out."""
    import torchvision.models

    class Hungry(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried 9 GB")

    monkeypatch.setattr(torchvision.models, "get_model", lambda name, **kw: Hungry())
    argv = ["explain", str(files["image"]), *FAST, "--out", str(tmp_path)]
    line = one_error_line(main(argv), capsys, "smaller --size")
    assert "larger" not in line


# ------------------------------------------------------------------------ many images
def _tiny_spec() -> str:
    from ..loaders import tinynet

    return f"{Path(tinynet.__file__)}:tiny_factory"


def _folder_of_images(root: Path) -> list[Path]:
    from PIL import Image

    paths = []
    for i, (rel, size) in enumerate(
        [("a/1.png", (20, 30)), ("a/2.png", (20, 30)), ("b/1.jpg", (24, 24)), ("c.png", (20, 30))]
    ):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = (torch.rand(*size, 3, generator=torch.Generator().manual_seed(i)) * 255).byte()
        Image.fromarray(pixels.numpy()).save(path)
        paths.append(path)
    return paths


def test_folder_batches_figures_maps_and_index(tmp_path: Path, capsys) -> None:
    """A folder: one figure and map per image (in its own pixels), class names in the titles
    and the index, images of one input size explained together."""
    import json

    _folder_of_images(tmp_path / "imgs")
    names = tmp_path / "names.txt"
    names.write_text("ant\nbee\ncow\n")
    out = tmp_path / "out"
    argv = ["explain", str(tmp_path / "imgs"), "--model", _tiny_spec(), "--class-names",
            str(names), "--size", "16", "--budget", "8", "--batch-size", "2", "--method",
            "rise", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "wrote 4 figures and maps" in captured.out
    assert "warning" not in captured.err  # a factory's weights are its own business
    index = json.loads((out / "index.json").read_text())
    assert [Path(r["image"]).name for r in index] == ["1.png", "2.png", "1.jpg", "c.png"]
    assert [r["figure"] for r in index] == [
        "figures/a__1.png", "figures/a__2.png", "figures/b__1.png", "figures/c.png"]  # fmt: skip
    for r, size in zip(index, [(20, 30), (20, 30), (24, 24), (20, 30)], strict=True):
        assert r["status"] == "ok" and r["method"] == "RISE"
        assert r["predicted_name"] in ("ant", "bee", "cow") and 0 < r["confidence"] <= 1
        assert is_png(out / r["figure"])
        saliency = torch.load(out / r["map"], weights_only=True)
        assert saliency.shape == size and bool(torch.isfinite(saliency).all())
    page = (out / "index.html").read_text()
    assert page.count("<img ") == 4 and "(ant)" in page or "(bee)" in page or "(cow)" in page
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging left


def test_batching_does_not_change_what_is_written(tmp_path: Path, capsys) -> None:
    """Deterministic method: the maps are the same for any --batch-size and forward rows."""
    paths = _folder_of_images(tmp_path / "imgs")
    base = ["explain", *map(str, paths), "--model", _tiny_spec(), "--size", "16",
            "--method", "occlusion", "--budget", "9"]  # fmt: skip
    assert main([*base, "--batch-size", "1", "--out", str(tmp_path / "one")]) == 0
    assert main([*base, "--batch-size", "3", "--forward-batch-size", "5",
                 "--out", str(tmp_path / "three")]) == 0  # fmt: skip
    for path in sorted((tmp_path / "one" / "maps").iterdir()):
        one = torch.load(path, weights_only=True)
        three = torch.load(tmp_path / "three" / "maps" / path.name, weights_only=True)
        torch.testing.assert_close(one, three)


def test_skip_errors_records_unreadable_images(tmp_path: Path, capsys) -> None:
    import json

    paths = _folder_of_images(tmp_path / "imgs")
    (tmp_path / "imgs" / "a" / "0.png").write_bytes(b"not an image")  # sorts first
    argv = ["explain", str(tmp_path / "imgs"), "--model", _tiny_spec(), "--size", "16",
            "--budget", "4", "--out", str(tmp_path / "out")]  # fmt: skip
    line = one_error_line(main(argv), capsys, "0.png", "cannot read image", "--skip-errors")
    assert "IMAGE" in line and not (tmp_path / "out").exists()  # nothing half-written
    assert main([*argv, "--skip-errors"]) == 0
    captured = capsys.readouterr()
    assert "1 images failed" in captured.out and "skipped" in captured.err
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index[0]["status"] == "failed" and "cannot read image" in index[0]["error"]
    assert len(list((tmp_path / "out" / "maps").iterdir())) == len(paths)
    assert "failed: " in (tmp_path / "out" / "index.html").read_text()


def test_exported_and_scripted_models(tmp_path: Path, capsys) -> None:
    from ..loaders.tinynet import write_model_files

    files = write_model_files(tmp_path)
    for kind in ("export_static", "torchscript"):
        out = tmp_path / kind
        image = _folder_of_images(tmp_path / "imgs")[0]
        argv = ["explain", str(image), "--model", str(files[kind]), "--size", "16", "--pad",
                "--budget", "8", "--out", str(out)]  # fmt: skip
        assert main(argv) == 0, capsys.readouterr().err
        assert "not normalised" in capsys.readouterr().out
        assert torch.load(out / "saliency.pt", weights_only=True).shape == (20, 30)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--method", "nope"], ["--method nope", "perturbmask", "gradcam"]),
        (["--target", "zebra"], ["--target 'zebra'", "class index"]),
        (["--class-names", "{names}"], ["--class-names", "2 names", "3 outputs"]),
        (["--normalize", "1,2/0"], ["--normalize", "MEAN"]),
    ],
)
def test_model_options_errors(tmp_path: Path, capsys, extra: list[str], words: list[str]) -> None:
    image = _folder_of_images(tmp_path / "imgs")[0]
    (tmp_path / "two.txt").write_text("ant\nbee\n")
    extra = [e.format(names=tmp_path / "two.txt") for e in extra]
    argv = ["explain", str(image), "--model", _tiny_spec(), "--size", "16", "--budget", "4"]
    one_error_line(main([*argv, *extra, "--out", str(tmp_path / "out")]), capsys, *words)
    assert not (tmp_path / "out").exists()
