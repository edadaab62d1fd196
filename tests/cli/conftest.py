"""Shared fixtures of the command-line tests: one thread, a few image and weight files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="package")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 32x32 PNG and JPEG, a 32x48 PNG, a resnet18 state dict and a few broken files."""
    from PIL import Image
    from torchvision.models import resnet18

    root = tmp_path_factory.mktemp("cli")
    gen = torch.Generator().manual_seed(0)
    pixels = (torch.rand(32, 32, 3, generator=gen) * 255).to(torch.uint8).numpy()
    out: dict[str, Path] = {"root": root}
    out["image"] = root / "tiny.png"
    Image.fromarray(pixels).save(out["image"])
    out["jpeg"] = root / "tiny.jpg"
    Image.fromarray(pixels).save(out["jpeg"])
    wide = (torch.rand(32, 48, 3, generator=gen) * 255).to(torch.uint8).numpy()
    out["wide"] = root / "wide.png"
    Image.fromarray(wide).save(out["wide"])

    torch.manual_seed(0)
    model = resnet18(weights=None)
    sd = model.state_dict()
    out["weights"] = root / "resnet18.pt"
    torch.save(sd, out["weights"])
    out["parallel_pt"] = root / "parallel.pt"  # as saved from nn.DataParallel
    torch.save({f"module.{k}": v for k, v in sd.items()}, out["parallel_pt"])

    out["garbage_png"] = root / "garbage.png"
    out["garbage_png"].write_bytes(b"this is not an image")
    out["truncated_png"] = root / "truncated.png"
    out["truncated_png"].write_bytes(out["image"].read_bytes()[:60])
    out["garbage_pt"] = root / "garbage.pt"
    out["garbage_pt"].write_bytes(b"\x80definitely not a checkpoint")
    out["text_pt"] = root / "weights.txt"  # 's' pops from the unpickler's empty stack
    out["text_pt"].write_text("some text\nmore lines\n")
    out["hello_pt"] = root / "hello.pt"
    out["hello_pt"].write_text("hello")
    out["json_pt"] = root / "weights.json"
    out["json_pt"].write_text('{"fc.weight": [[0.1, 0.2]]}')
    out["empty_pt"] = root / "empty.pt"
    out["empty_pt"].write_bytes(b"")
    out["list_pt"] = root / "list.pt"
    torch.save([torch.zeros(2)], out["list_pt"])
    out["module_pt"] = root / "module.pt"
    torch.save(torch.nn.Linear(2, 2), out["module_pt"])
    out["missing_pt"] = root / "missing.pt"
    torch.save({k: v for k, v in sd.items() if not k.startswith("fc.")}, out["missing_pt"])
    out["head10_pt"] = root / "head10.pt"
    torch.save(resnet18(weights=None, num_classes=10).state_dict(), out["head10_pt"])
    out["stem_pt"] = root / "stem.pt"  # a stem of another shape: not a class-count problem
    stem = dict(resnet18(weights=None, num_classes=10).state_dict())
    stem["conv1.weight"] = torch.zeros(64, 3, 5, 5)
    torch.save(stem, out["stem_pt"])
    (root / "sub").mkdir()  # a folder without images
    (root / "sub" / "notes.txt").write_text("no images here")
    out["a_file"] = root / "a_file.txt"
    out["a_file"].write_text("not a folder")
    return out
