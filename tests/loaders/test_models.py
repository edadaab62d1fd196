"""``load_model``: every kind of spec, weights and class names, and one-line errors."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from captum_perturbmask.loaders import (
    Exported,
    LoadError,
    Logits,
    Normalize,
    load_class_names,
    load_model,
    probe_model,
    spec_kind,
)
from captum_perturbmask.loaders.models import IMAGENET_MEAN, min_input_size

from . import tinynet
from .tinynet import tiny_factory

TINY = f"{Path(tinynet.__file__)}:tiny_factory"
X = torch.rand(5, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def _expected() -> torch.Tensor:
    with torch.no_grad():
        return tiny_factory()(X)


def test_spec_kinds(model_files: dict[str, Path]) -> None:
    assert spec_kind("resnet18") == "torchvision"
    assert spec_kind("digits") == "digits"
    assert spec_kind("timm:resnet18") == "timm" and spec_kind("hf:some/folder") == "hf"
    assert spec_kind("my_pkg.nets:build") == "factory" and spec_kind(TINY) == "factory"
    assert spec_kind(str(model_files["export"])) == "export"
    assert spec_kind(str(model_files["torchscript"])) == "torchscript"
    assert spec_kind(nn.Linear(2, 2)) == "module"


@pytest.mark.parametrize("kind", ["export", "export_static", "torchscript"])
def test_model_files_give_the_models_outputs(model_files: dict[str, Path], kind: str) -> None:
    """Exported (dynamic or static batch of 1) and scripted files: the same logits as the
    model they were made from, for a batch of 5, in a module that takes hooks and .eval()."""
    model, names = load_model(str(model_files[kind]))
    assert isinstance(model, (Exported, Logits)) and names is None and not model.training
    calls = []
    handle = model.register_forward_pre_hook(lambda m, a: calls.append(a[0].shape[0]))
    with torch.no_grad():
        out = model(X)
    handle.remove()
    assert calls == [5]
    torch.testing.assert_close(out, _expected())


def test_static_export_chunks_any_batch(model_files: dict[str, Path]) -> None:
    model, _ = load_model(str(model_files["export_static"]))
    assert model.input_shape == (1, 3, 16, 16)
    with pytest.raises(LoadError, match=r"exported for inputs \(1, 3, 16, 16\)"):
        probe_model(model, torch.rand(2, 3, 20, 20), "tiny_static.pt2")


def test_factory_file_and_module_with_weights_and_names(
    model_files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, names = load_model(TINY, weights=str(model_files["named"]))
    assert names == ["ant", "bee", "cow"]
    torch.testing.assert_close(model(X), _expected())
    (tmp_path / "my_nets.py").write_text(
        "from torch import nn\n\ndef small(num_classes=3):\n    return nn.Sequential("
        "nn.Flatten(), nn.LazyLinear(num_classes))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    model, _ = load_model("my_nets:small", num_classes=7)
    assert model(torch.rand(2, 3, 4, 4)).shape == (2, 7)


def test_cwd_module_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A module next to the user imports as with ``python -m`` (the console script's path
    does not hold the working directory), and sys.path is left as it was."""
    (tmp_path / "here_nets.py").write_text("import torch\nnet = lambda: torch.nn.Identity()\n")
    monkeypatch.chdir(tmp_path)
    before = list(sys.path)
    model, _ = load_model("here_nets:net")
    assert isinstance(model, nn.Identity) and sys.path == before
    sys.modules.pop("here_nets", None)


def test_torchvision_normalisation_and_default_categories(monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.models

    model, names = load_model("resnet18", num_classes=4)
    assert isinstance(model[0], Normalize) and names is None
    assert model[0].mean.flatten().tolist() == pytest.approx(IMAGENET_MEAN)
    real = torchvision.models.get_model
    monkeypatch.setattr(torchvision.models, "get_model", lambda name, **kw: real(name))
    _, names = load_model("resnet18", weights="DEFAULT")  # offline: stands in for the cache
    assert len(names) == 1000 and names[207] == "golden retriever"
    model, _ = load_model("resnet18", num_classes=4, normalize="none")
    assert not isinstance(model, nn.Sequential)
    model, _ = load_model(TINY, normalize=((0.5, 0.5, 0.5), (0.2, 0.2, 0.2)))
    assert isinstance(model[0], Normalize) and type(model[1]).__name__ == "TinyNet"


def test_digits_with_a_weights_file(tmp_path: Path) -> None:
    from captum_perturbmask.data import DigitsCNN

    shipped, _ = load_model("digits")
    path = tmp_path / "digits5.pt"
    torch.save(DigitsCNN(5).state_dict(), path)
    model, _ = load_model("digits", weights=str(path), num_classes=5)
    assert model(torch.rand(1, 3, 64, 64)).shape == (1, 5) and not model.training
    assert isinstance(shipped, DigitsCNN)


def test_class_names_files(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("cat\n\n dog \n")
    (tmp_path / "b.json").write_text('["cat", "dog"]')
    (tmp_path / "c.json").write_text('{"1": "dog", "0": "cat"}')
    for name in ("a.txt", "b.json", "c.json"):
        assert load_class_names(tmp_path / name) == ["cat", "dog"]


def test_probe_model_tells_why(model_files: dict[str, Path]) -> None:
    model, _ = load_model("resnet18", num_classes=3)
    with pytest.raises(LoadError, match=r"cannot take inputs of shape \(1, 2, 40\).*3 channels"):
        probe_model(model, torch.rand(1, 2, 40), "resnet18")
    with pytest.raises(LoadError, match="not logits"):
        probe_model(nn.Flatten(0), torch.rand(2, 3), "flat")


ERRORS = [
    (dict(spec="resnet19"), "spec", "did you mean resnet18"),
    (dict(spec="fasterrcnn_resnet50_fpn"), "spec", "not a classification model"),
    (dict(spec="nowhere/model.pt2"), "spec", "does not exist"),
    (dict(spec="no_such_module_xyz:build"), "spec", "no module named 'no_such_module_xyz'"),
    (dict(spec=f"{Path(tinynet.__file__)}:tiny_factroy"), "spec", "did you mean tiny_factory"),
    (dict(spec=f"{Path(tinynet.__file__)}:torch"), "spec", "not a callable"),
    (dict(spec="timm:resnet18", weights="DEFAULT"), None, None),  # see test_timm
    (dict(spec="resnet18", weights="DEFAULT", num_classes=3), "num_classes", "DEFAULT"),
    (dict(spec=TINY, weights="DEFAULT"), "weights", "torchvision and timm"),
    (dict(spec="resnet18", num_classes=0), "num_classes", "positive int"),
    (dict(spec="resnet18", device="tpu"), None, "`device`"),
    (dict(spec="resnet18", normalize="zscore"), "normalize", "'auto', 'imagenet'"),
    (dict(spec=3), "spec", "must be a model name"),
]


@pytest.mark.parametrize(("kwargs", "argument", "words"), ERRORS)
def test_errors_are_one_line_naming_the_argument(kwargs, argument, words) -> None:
    if words is None:
        return
    with pytest.raises(ValueError) as info:
        load_model(**kwargs)
    message = str(info.value)
    assert "\n" not in message and words in message, message
    if argument is not None:
        assert isinstance(info.value, LoadError) and info.value.argument == argument


def test_model_files_refuse_weights_and_misplaced_files(model_files: dict[str, Path]) -> None:
    with pytest.raises(LoadError, match="its file holds the whole model") as info:
        load_model(str(model_files["export"]), weights=str(model_files["state_dict"]))
    assert info.value.argument == "weights"
    with pytest.raises(LoadError, match="is a state dict.*as `weights`"):
        load_model(str(model_files["state_dict"]))
    with pytest.raises(LoadError, match="is a TorchScript model"):
        load_model("resnet18", weights=str(model_files["torchscript"]))


def test_weights_of_another_head_name_the_class_count(tmp_path: Path) -> None:
    path = tmp_path / "head5.pt"
    torch.save(tiny_factory(5).state_dict(), path)
    with pytest.raises(LoadError, match="pass `num_classes` 5"):
        load_model(TINY, weights=str(path), num_classes=3)
    model, _ = load_model(TINY, weights=str(path), num_classes=5)
    assert model(X).shape == (5, 5)


def test_broken_model_files(tmp_path: Path) -> None:
    path = tmp_path / "broken.pt2"
    path.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    with pytest.raises(LoadError) as info:
        load_model(str(path))
    assert "\n" not in str(info.value) and info.value.argument == "spec"
    raising = tmp_path / "raising.py"
    raising.write_text("def build():\n    raise RuntimeError('no GPU here. More')\n")
    with pytest.raises(LoadError, match=r"build\(\) failed: RuntimeError: no GPU here$"):
        load_model(f"{raising}:build")


def test_min_input_size() -> None:
    assert min_input_size("inception_v3") == (75, 75)
    assert min_input_size(TINY) is None


def test_timm(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    model, names = load_model("timm:resnet18", num_classes=4)
    assert isinstance(model[0], Normalize) and model(torch.rand(2, 3, 32, 32)).shape == (2, 4)
    path = tmp_path / "timm18.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(timm.create_model("resnet18", num_classes=4).state_dict(), path)
    with pytest.raises(LoadError, match="pass `num_classes` 4"):
        load_model("timm:resnet18", weights=str(path))
    model, _ = load_model("timm:resnet18", weights=str(path), num_classes=4)
    with pytest.raises(LoadError, match="did you mean resnet18"):
        load_model("timm:resnet18x")


def test_hugging_face_folder(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(
        image_size=16, patch_size=8, num_hidden_layers=1, hidden_size=16, num_attention_heads=2,
        intermediate_size=16, num_labels=2, id2label={0: "cat", 1: "dog"},
        label2id={"cat": 0, "dog": 1},
    )  # fmt: skip
    transformers.ViTForImageClassification(config).save_pretrained(tmp_path / "vit")
    transformers.ViTImageProcessor(image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(
        tmp_path / "vit"
    )
    model, names = load_model(f"hf:{tmp_path / 'vit'}")
    assert names == ["cat", "dog"] and isinstance(model[0], Normalize)
    assert model(torch.rand(3, 3, 16, 16)).shape == (3, 2)
    with pytest.raises(LoadError, match="no config.json"):
        load_model(f"hf:{tmp_path}")
    with pytest.raises(LoadError, match="does not exist"):
        load_model("hf:google/vit-base-patch16-224")
