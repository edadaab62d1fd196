"""State-dict files: read safely, class names carried, every non-checkpoint told apart."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from captum_perturbmask.loaders import LoadError, load_state_dict, read_state_dict
from captum_perturbmask.loaders.weights import sniff_file


def test_checkpoint_layouts(tmp_path: Path) -> None:
    sd = torch.nn.Linear(2, 3).state_dict()
    layouts = {
        "plain": sd,
        "nested": {"model_state_dict": sd, "epoch": 3},
        "parallel": {f"module.{k}": v for k, v in sd.items()},
        "named": {"state_dict": sd, "class_names": ["a", "b", "c"]},
    }
    for name, obj in layouts.items():
        torch.save(obj, tmp_path / f"{name}.pt")
        got, names = read_state_dict(tmp_path / f"{name}.pt")
        assert sorted(got) == ["bias", "weight"], name
        assert names == (["a", "b", "c"] if name == "named" else None)


def test_safetensors(tmp_path: Path) -> None:
    safetensors = pytest.importorskip("safetensors.torch")
    sd = torch.nn.Linear(2, 3).state_dict()
    safetensors.save_file(dict(sd), tmp_path / "w.safetensors")
    assert sniff_file(tmp_path / "w.safetensors") == "safetensors"
    model = torch.nn.Linear(2, 3)
    assert load_state_dict(model, tmp_path / "w.safetensors") is None
    torch.testing.assert_close(model.weight, sd["weight"])


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "it is empty"),
        (b"hello", "it holds text"),
        (b'{"a": 1}', "it holds JSON"),
        (b"\x00\x01\x02garbage", "neither a zip archive nor a pickle"),
        (b"\x80garbage", "cannot read weights"),
    ],
)
def test_not_a_checkpoint(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "w.pt"
    path.write_bytes(content)
    with pytest.raises(LoadError, match=words) as info:
        read_state_dict(path)
    assert info.value.argument == "weights" and "\n" not in str(info.value)


def test_bad_class_names_entry(tmp_path: Path) -> None:
    torch.save({"state_dict": torch.nn.Linear(2, 3).state_dict(), "class_names": [1, 2]},
               tmp_path / "w.pt")  # fmt: skip
    with pytest.raises(LoadError, match="'class_names' must be a list of non-empty strings"):
        read_state_dict(tmp_path / "w.pt")
