import torch
from torch import nn

from medcolor.nets.gradcam import colorized, grad_cam, has_feature_map


class RegionOnly(nn.Module):
    """A colorizer that shows the network only the top-left quarter of the image."""

    def forward(self, x):
        mask = torch.zeros_like(x)
        mask[..., : x.shape[-2] // 2, : x.shape[-1] // 2] = 1
        return (x * mask).expand(-1, 3, -1, -1)


class TinyBackbone(nn.Module):
    """timm's interface (forward_features -> forward_head) over two convolutions and a linear head."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.ReLU(),
                                  nn.Conv2d(8, 16, 3, stride=4, padding=1, bias=False), nn.ReLU())
        self.fc = nn.Linear(16, 2)
        with torch.no_grad():
            self.fc.weight.abs_()

    def forward_features(self, x):
        return self.body(x)

    def forward_head(self, f):
        return self.fc(f.mean((2, 3)))


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.colorizer, self.backbone = RegionOnly(), TinyBackbone()


def test_the_heat_map_peaks_where_the_model_looks():
    torch.manual_seed(0)
    model = Model()
    for p in model.parameters():
        p.requires_grad_(False)  # a frozen model still gets a map
    x = torch.rand(3, 1, 64, 64) + 0.5
    assert has_feature_map(model)
    for label in (0, 1):
        cam = grad_cam(model, x, label)
        assert cam.shape == (3, 64, 64) and float(cam.max()) == 1.0
        inside = cam[:, :40, :40].flatten(1).amax(1)  # the region, plus the 4-pixel stride of the feature map
        outside = cam[:, 44:, 44:].flatten(1).amax(1)
        assert (inside == 1).all() and (outside < 0.05).all()
    rgb = colorized(model, x)
    assert rgb.shape == (3, 64, 64, 3) and float(rgb.min()) == 0.0


def test_at_the_demos_size_grad_cam_moves_to_the_deepest_stage_at_least_7_wide(real_batch):
    """At 64 px EfficientNet-Lite0's last map is 2 x 2 (every overlay read 'no positive evidence'): the layer
    chosen is the deepest timm stage whose map is at least 7 x 7, and its maps show evidence."""
    import pytest

    from medcolor.core.config import ModelConfig
    from medcolor.core.errors import UsageError
    from medcolor.nets.gradcam import MIN_SIDE, cam_layer
    from medcolor.nets.models import build_model

    model = build_model(ModelConfig(backbone="efficientnet_lite0", colorizer="conv1x1"), n_out=5).eval()
    assert cam_layer(model, 320) is None  # 10 x 10 at 320 px: the last map is kept
    layer = cam_layer(model, 64)
    reduction = {f["module"]: f["reduction"] for f in model.backbone.feature_info}[layer]
    assert 64 // reduction >= MIN_SIDE and 64 // (2 * reduction) < MIN_SIDE  # the deepest that is wide enough
    cams = grad_cam(model, real_batch[0], 0, layer)
    assert cams.shape == (8, 64, 64) and (cams.flatten(1).amax(1) > 0).sum() >= 6
    assert cam_layer(model, 64, "blocks.1") == "blocks.1"
    with pytest.raises(UsageError, match="--layer 'nope' is not a module of the backbone; its stages are blocks.0"):
        cam_layer(model, 64, "nope")
