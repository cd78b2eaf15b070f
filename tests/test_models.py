import pytest
import torch

from medcolor.core.config import ModelConfig
from medcolor.core.errors import UsageError
from medcolor.nets.models import build_model, load_parts


def test_model_is_colorizer_then_backbone_with_new_head():
    model = build_model(ModelConfig(backbone="densenet121", colorizer="coloru"), n_out=7)
    assert model.head.out_features == 7 and model.head.in_features == 1024
    assert model(torch.randn(2, 1, 64, 64)).shape == (2, 7)
    assert model.part_of("colorizer.dw1.0.weight") == "colorizer"
    assert model.part_of("backbone.classifier.weight") == "head"
    assert model.part_of("backbone.features.conv0.weight") == "body"


def test_load_parts_transfers_colorizer_and_body_but_not_head(tmp_path):
    torch.manual_seed(0)
    source = build_model(ModelConfig(colorizer="pixelshuffle"), n_out=5)
    torch.save(source.state_dict(), tmp_path / "best.pth")
    target = build_model(ModelConfig(colorizer="pixelshuffle"), n_out=5)
    load_parts(target, tmp_path / "best.pth", parts=["colorizer", "body"])
    for k, v in target.state_dict().items():
        same = torch.equal(v, source.state_dict()[k])
        assert same == (target.part_of(k) != "head") or v.dtype == torch.long, k


def test_load_parts_names_the_mismatch(tmp_path):
    torch.save(build_model(ModelConfig(colorizer="coloru"), n_out=5).state_dict(), tmp_path / "c.pth")
    target = build_model(ModelConfig(colorizer="deconv"), n_out=5)
    with pytest.raises(UsageError, match="c.pth does not fit this model.*missing keys"):
        load_parts(target, tmp_path / "c.pth", parts=["colorizer"])


def test_reset_head_reinitialises_only_the_head():
    model = build_model(ModelConfig(colorizer="none"), n_out=5)
    head, body = model.head.weight.clone(), model.backbone.conv1.weight.clone()
    model.reset_head()
    assert not torch.equal(head, model.head.weight) and torch.equal(body, model.backbone.conv1.weight)
