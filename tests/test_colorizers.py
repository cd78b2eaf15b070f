import pytest
import torch

from medcolor.nets.colorizers import create_colorizer, list_colorizers
from medcolor.core.errors import UsageError

EXPECTED_PARAMS = {"deconv": 596_611, "pixelshuffle": 599_440, "coloru": 192_659, "resizeconv": 596_503,
                   "none": 0, "gray": 0}


@pytest.mark.parametrize("name,count", EXPECTED_PARAMS.items())
def test_parameter_counts_match_spec(name, count):
    assert sum(p.numel() for p in create_colorizer(name).parameters()) == count


@pytest.mark.parametrize("name", ["deconv", "pixelshuffle", "coloru", "resizeconv", "none"])
@pytest.mark.parametrize("side", [224, 256, 320])
def test_output_is_three_channels_at_input_size(name, side):
    with torch.no_grad():
        y = create_colorizer(name).eval()(torch.randn(2, 1, side, side))
    assert y.shape == (2, 3, side, side)


def test_deconv_layers_follow_the_reference():
    m = create_colorizer("deconv")
    up = m.upsample
    assert (up.kernel_size, up.stride, up.padding, up.groups, up.bias) == ((8, 8), (4, 4), (2, 2), 3, None)
    stem = m.features[0]
    assert (stem.kernel_size, stem.stride, stem.padding) == ((7, 7), (2, 2), (2, 2))
    assert sum(type(b).__name__ == "_ResBlock" for b in m.features) == 8
    assert torch.equal(m.features[1].weight, torch.ones(64)) and torch.equal(m.features[1].bias, torch.zeros(64))


def test_pixelshuffle_uses_icnr_so_subpixels_start_identical():
    w = create_colorizer("pixelshuffle").to_subpixels.weight  # (48, 64, 1, 1); ICNR: 16 copies per channel
    per_channel = w.view(3, 16, 64)
    assert torch.equal(per_channel, per_channel[:, :1].expand_as(per_channel))


def _std_ratio(conv, init) -> float:
    """Observed weight std over the std that `init` ('default' = PyTorch's, 'xavier') gives this conv."""
    import math

    fan_in = conv.weight[0].numel()
    fan_out = conv.out_channels * conv.weight[0, 0].numel()
    bound = 1 / math.sqrt(fan_in) if init == "default" else math.sqrt(6 / (fan_in + fan_out))
    return float(conv.weight.detach().std()) / (bound / math.sqrt(3))


def test_pixelshuffle_init_is_icnr_plus_pytorch_defaults_and_deconv_keeps_xavier():
    torch.manual_seed(0)
    ps, dc = create_colorizer("pixelshuffle"), create_colorizer("deconv")  # thesis B.1.2
    for conv in (ps.features[0], ps.features[4].body[0], ps.features[11].body[3]):
        assert _std_ratio(conv, "default") == pytest.approx(1, abs=0.1)
        assert abs(_std_ratio(conv, "xavier") - 1) > 0.3  # distinguishable from Xavier
    for conv in (dc.features[0], dc.features[4].body[0], dc.to_rgb):
        assert _std_ratio(conv, "xavier") == pytest.approx(1, abs=0.1)
    bns = [m for m in ps.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(torch.equal(b.weight, torch.ones_like(b.weight)) and not b.bias.any() for b in bns)


def test_coloru_ends_with_a_1x1_conv_to_three_channels():
    last = create_colorizer("coloru").out[-1]
    assert isinstance(last, torch.nn.Conv2d) and last.kernel_size == (1, 1) and last.out_channels == 3


def test_none_replicates_gray_channel():
    x = torch.randn(1, 1, 8, 8)
    y = create_colorizer("none")(x)
    assert all(torch.equal(y[:, c], x[:, 0]) for c in range(3))


@pytest.mark.parametrize("name,side", [("coloru", 100), ("pixelshuffle", 102), ("resizeconv", 102)])
def test_sizes_a_module_cannot_take_fail_clearly(name, side):
    with pytest.raises(UsageError, match="image size|divisible"):
        create_colorizer(name)(torch.randn(1, 1, side, side))


def test_unknown_colorizer_suggests_names():
    with pytest.raises(UsageError, match="did you mean deconv"):
        create_colorizer("deconvv")
    assert {"deconv", "pixelshuffle", "coloru", "resizeconv", "none"} <= set(list_colorizers())
