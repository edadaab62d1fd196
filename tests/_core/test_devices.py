import pytest
import torch

from captum_perturbmask._core.devices import resolve_device


def test_cpu_strings_and_devices_pass_through() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device(" cpu ") == torch.device("cpu")


@pytest.mark.parametrize("text", ["tpu", "gpu", "cuda:x", "", "cpu:-1"])
def test_unknown_device_strings_name_the_argument(text: str) -> None:
    with pytest.raises(ValueError, match="`dev` must be a torch device"):
        resolve_device(text, "dev")


def test_non_string_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="`device` must be a string"):
        resolve_device(0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without CUDA")
def test_absent_cuda_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="no cuda device is available"):
        resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bare_cuda_gets_an_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    with pytest.raises(ValueError, match="CUDA device"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")
