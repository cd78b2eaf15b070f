import time

import pytest
import timm
import torch

from medcolor.backbones import _hub_reachable, create_backbone
from medcolor.errors import UsageError


@pytest.mark.skipif(_hub_reachable(), reason="needs a machine without access to the Hugging Face hub")
def test_pretrained_offline_fails_fast_with_a_fix():
    start = time.perf_counter()
    with pytest.raises(UsageError, match="model.weights=FILE"):
        create_backbone("resnet18", 5, pretrained=True)
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("fmt", ["pth", "safetensors", "wrapped"])
def test_weights_file_round_trips(tmp_path, fmt):
    source = timm.create_model("resnet18", num_classes=1000)
    sd = source.state_dict()
    path = tmp_path / f"w.{'safetensors' if fmt == 'safetensors' else 'pth'}"
    if fmt == "safetensors":
        from safetensors.torch import save_file
        save_file(sd, str(path))
    else:
        torch.save({"state_dict": sd} if fmt == "wrapped" else sd, path)
    model = create_backbone("resnet18", 5, weights=path)
    assert torch.equal(model.conv1.weight, source.conv1.weight)
    assert model.get_classifier().out_features == 5


def test_weights_for_another_architecture_fail_with_one_line(tmp_path):
    torch.save(timm.create_model("densenet121").state_dict(), tmp_path / "dense.pth")
    with pytest.raises(UsageError, match="dense.pth does not fit backbone 'resnet18'") as err:
        create_backbone("resnet18", 5, weights=tmp_path / "dense.pth")
    assert "\n" not in str(err.value)


def test_missing_or_unsafe_weights_file(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        create_backbone("resnet18", 5, weights=tmp_path / "nope.pth")
    torch.save({"fn": print}, tmp_path / "pickle.pth")  # arbitrary pickled code: refused by weights_only
    with pytest.raises(UsageError, match="cannot read weights file"):
        create_backbone("resnet18", 5, weights=tmp_path / "pickle.pth")


def test_unknown_backbone_suggests_close_names():
    with pytest.raises(UsageError, match="did you mean.*resnet18"):
        create_backbone("resnet81", 5)
