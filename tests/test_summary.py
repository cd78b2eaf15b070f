import json

import pytest
import torch

from medcolor.core.config import ModelConfig
from medcolor.nets.summary import summarize_colornet

# thesis Table 4.3, 5 outputs: (backbone, colorizer, mode) -> trainable parameters
TABLE_4_3 = {
    ("resnet18", "none", 1): 2_565, ("resnet18", "none", 3): 2_565,
    ("resnet18", "deconv", 1): 599_176, ("resnet18", "pixelshuffle", 1): 602_005, ("resnet18", "coloru", 1): 195_224,
    ("resnet18", "none", 2): 11_179_077, ("resnet18", "deconv", 2): 11_775_688,
    ("resnet18", "pixelshuffle", 2): 11_778_517, ("resnet18", "coloru", 2): 11_371_736,
    ("densenet121", "none", 1): 5_125, ("densenet121", "none", 3): 5_125,
    ("densenet121", "deconv", 1): 601_736, ("densenet121", "pixelshuffle", 1): 604_565,
    ("densenet121", "coloru", 1): 197_784,
    ("densenet121", "none", 2): 6_958_981, ("densenet121", "deconv", 2): 7_555_592,
    ("densenet121", "pixelshuffle", 2): 7_558_421, ("densenet121", "coloru", 2): 7_151_640,
    ("resnet18", "deconv", 3): 2_565, ("densenet121", "pixelshuffle", 3): 5_125,
}


@pytest.mark.parametrize("key,expected", TABLE_4_3.items(), ids=lambda v: "-".join(map(str, v)) if isinstance(v, tuple) else "")
def test_trainable_parameters_match_thesis_table(key, expected):
    backbone, colorizer, mode = key
    s = summarize_colornet(ModelConfig(backbone=backbone, colorizer=colorizer, mode=mode), n_out=5, image_size=64)
    assert s["trainable_params"] == expected
    assert s["output_shape"] == [1, 5]


def test_macs_at_320_match_spec_figures():
    s = summarize_colornet(ModelConfig(backbone="resnet18", colorizer="deconv", mode=1), n_out=5, image_size=320)
    assert round(s["macs"]["colorizer"] / 1e9, 2) == 3.86
    assert round(s["macs"]["backbone"] / 1e9, 2) == 3.70
    assert s["total_params"] == 11_775_688
    assert s["parts"]["body"] == {"total": 11_176_512, "trainable": 0}


@pytest.mark.parametrize("colorizer", ["window", "filters"])
def test_fixed_front_ends_have_no_parameters_and_train_in_mode_1(colorizer, real_batch):
    from test_modes import one_step_learner
    from medcolor.nets.models import build_model

    s = summarize_colornet(ModelConfig(colorizer=colorizer, mode=1), n_out=5, image_size=64)
    assert s["parts"]["colorizer"] == {"total": 0, "trainable": 0} and s["trainable_params"] == 2_565
    model = build_model(ModelConfig(colorizer=colorizer, mode=1), n_out=5)
    head = model.head.weight.clone()
    one_step_learner(model, 1, real_batch)
    assert not torch.equal(head, model.head.weight)


def test_cheap_baselines_and_mode_1_options_in_model_summary(capsys):
    import json
    from medcolor.cli import main

    def trainable(*args):
        assert main(["model", "summary", "--backbone", "resnet18", "--mode", "1", "--json", *args]) == 0
        return json.loads(capsys.readouterr().out)["trainable_params"]

    head = 512 * 5 + 5
    assert trainable("--colorizer", "conv1x1") == 6 + head
    assert trainable("--colorizer", "stemsum") == head  # the summed stem is part of the frozen body
    # resnet18's BatchNorm channels: bn1, 4 per stage (2 blocks x 2), one per downsampling shortcut
    bn_affine = 2 * (64 + 4 * 64 + (4 * 128 + 128) + (4 * 256 + 256) + (4 * 512 + 512))
    assert trainable("--colorizer", "none", "--train-bn") == head + bn_affine == 12_165
    assert trainable("--colorizer", "none", "--train-stem") == head + 64 * 3 * 49 + 2 * 64  # conv1 + bn1
    assert main(["model", "summary", "--colorizer", "conv1x1", "--train-bn"]) == 0
    assert "mode 1, train_bn" in capsys.readouterr().out


def test_an_autoencoder_body_is_the_one_named_or_refused(capsys):
    """ae-resnet50 with model.backbone=resnet18 used to build a ResNet-50 while its run said resnet18."""
    from medcolor.cli import main
    from medcolor.core.config import ModelConfig
    from medcolor.nets.models import build_model

    model = build_model(ModelConfig(arch="ae-resnet50", backbone="resnet18"), n_out=1)
    assert model.encoder.num_features == 512  # ResNet-18's, not ResNet-50's 2048
    assert main(["model", "summary", "--model", "ae-resnet50", "--backbone", "resnet18", "--image-size", "64"]) == 0
    assert capsys.readouterr().out.startswith("ae-resnet50 (resnet18 body): 15,105,376 parameters")
    assert main(["model", "summary", "--recipe", "ixi-ae-resnet50-mse", "model.backbone=resnet18", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total_params"] == 15_105_376
    assert main(["model", "summary", "--model", "ae-small", "--backbone", "resnet18"]) == 2
    assert "--backbone is not used by ae-small" in capsys.readouterr().err
    assert main(["model", "summary", "--recipe", "ixi-ae-small-mse"]) == 0


def test_an_autoencoder_with_a_timm_body_needs_the_body_named(tmp_path, capsys):
    from medcolor.cli import main

    (tmp_path / "ae.yaml").write_text("name: ae\ntask: reconstruction\ndata: {spec: ixi}\nmodel: {arch: ae-resnet50}\n")
    assert main(["recipes", "validate", str(tmp_path / "ae.yaml")]) == 2
    assert "needs model.backbone" in capsys.readouterr().err
