"""Colorization modules: 1-channel medical image -> 3-channel input for an ImageNet backbone.

A registry in the timm style: `create_colorizer(name)`; each module keeps the input's spatial size.
Architectures follow the thesis author's reference code; parameter counts are checked in tests.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from ..core.archs import NO_COLORIZER
from ..core.errors import UsageError
from ..core.registry import Registry

COLORIZERS: Registry[type[nn.Module]] = Registry("colorizer", key=str.lower)


def register(name: str):
    def deco(cls):
        cls.registry_name = name
        return COLORIZERS.register(name)(cls)
    return deco


def list_colorizers() -> list[str]:
    return sorted(COLORIZERS)


def create_colorizer(name: str, mean: float = 0.5028, std: float = 0.2902) -> nn.Module:
    """The colorizer `name`; the fixed front ends are told how the data was normalised (data.mean, data.std)."""
    cls = COLORIZERS.get(name)
    return cls(mean, std) if issubclass(cls, _FixedFrontEnd) else cls()


def describe_colorizers() -> str:
    """One line per colorizer: its name and the first line of its docstring."""
    return "\n".join(f"{name:<13} {(cls.__doc__ or '').strip().splitlines()[0]}" for name, cls in COLORIZERS.items())


def has_colorizer(model) -> bool:
    """Whether the model's front end makes something to look at (none / gray / stemsum pass the input on)."""
    colorizer = getattr(model, "colorizer", None)  # an ensemble (models.MeanOfMembers) has none of its own
    return colorizer is not None and not isinstance(colorizer, (Replicate, StemSum))


def _lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.01)


class _ResBlock(nn.Module):
    """x + [Conv -> BN -> LReLU -> Conv -> BN -> LReLU]; no activation after the add."""

    def __init__(self, ch: int = 64):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(ch, ch, 3, padding=1), nn.BatchNorm2d(ch), _lrelu(),
            nn.Conv2d(ch, ch, 3, padding=1), nn.BatchNorm2d(ch), _lrelu(),
        )

    def forward(self, x):
        return x + self.body(x)


def _stem_and_blocks() -> nn.Sequential:
    """Steps 1-2 shared by deconv, pixelshuffle and resizeconv: side 320 -> 159 -> 80."""
    return nn.Sequential(
        nn.Conv2d(1, 64, 7, stride=2, padding=2), nn.BatchNorm2d(64), _lrelu(),
        nn.MaxPool2d(3, stride=2, padding=1),
        *[_ResBlock(64) for _ in range(8)],
    )


def _stem_side(side: int) -> int:
    after_conv = (side + 2 * 2 - 7) // 2 + 1
    return (after_conv + 2 * 1 - 3) // 2 + 1


def _init_xavier_bn(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class _ResidualColorizer(nn.Module):
    """Shared by the three stem-based colorizers: stem + 8 residual blocks + an x4 upsampler."""

    def _check_side(self, x: torch.Tensor, slack: int = 0) -> None:
        for side in x.shape[-2:]:
            base = 4 * _stem_side(side)
            if not base <= side <= base + slack:
                raise UsageError(
                    f"the {self.registry_name} colorizer cannot produce a {side}-pixel side from its x4 upsampling "
                    f"(it gives {base}); use an image size divisible by 4, e.g. {max(4, side - side % 4)}")


@register("deconv")
class DeconvColorizer(_ResidualColorizer):
    """Stem + blocks -> Conv 64->3 k1 -> grouped ConvTranspose x4 (no bias), output_size = input size."""

    def __init__(self):
        super().__init__()
        self.features = _stem_and_blocks()
        self.to_rgb = nn.Conv2d(64, 3, 1)
        self.upsample = nn.ConvTranspose2d(3, 3, 8, stride=4, padding=2, groups=3, bias=False)
        _init_xavier_bn(self)

    def forward(self, x):
        self._check_side(x, slack=3)
        return self.upsample(self.to_rgb(self.features(x)), output_size=x.shape[-2:])


@register("pixelshuffle")
class PixelShuffleColorizer(_ResidualColorizer):
    """Stem + blocks -> Conv 64->48 k1 (ICNR) -> BN -> PixelShuffle(4) -> pad + blur (no checkerboard).
    Init as the thesis (B.1.2): ICNR for the 1x1 conv, PyTorch's defaults elsewhere (BatchNorm 1 / 0)."""

    def __init__(self, scale: int = 4):
        super().__init__()
        from fastai.layers import icnr_init

        self.features = _stem_and_blocks()
        self.to_subpixels = nn.Conv2d(64, 3 * scale**2, 1)
        self.norm = nn.BatchNorm2d(3 * scale**2)
        self.shuffle = nn.PixelShuffle(scale)
        self.blur = nn.Sequential(nn.ReplicationPad2d((1, 0, 1, 0)), nn.AvgPool2d(2, stride=1))
        with torch.no_grad():
            self.to_subpixels.weight.copy_(icnr_init(self.to_subpixels.weight, scale=scale))

    def forward(self, x):
        self._check_side(x)
        return self.blur(self.shuffle(self.norm(self.to_subpixels(self.features(x)))))


@register("resizeconv")
class ResizeConvColorizer(_ResidualColorizer):
    """deconv with the transposed conv replaced by nearest x4 upsampling -> ReflectionPad(1) -> Conv 3x3."""

    def __init__(self):
        super().__init__()
        self.features = _stem_and_blocks()
        self.to_rgb = nn.Conv2d(64, 3, 1)
        self.upsample = nn.Sequential(
            nn.Upsample(scale_factor=4, mode="nearest"), nn.ReflectionPad2d(1), nn.Conv2d(3, 3, 3))
        _init_xavier_bn(self)

    def forward(self, x):
        self._check_side(x)
        return self.upsample(self.to_rgb(self.features(x)))


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), _lrelu(),
        nn.Conv2d(cout, cout, 4, stride=2, padding=1), _lrelu(), nn.BatchNorm2d(cout))


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1), _lrelu(),
        nn.Conv2d(cout, cout, 3, padding=1), _lrelu(),
        nn.Conv2d(cout, cout, 3, padding=1), _lrelu(), nn.BatchNorm2d(cout))


@register("coloru")
class ColorU(nn.Module):
    """Small U-Net (3 levels, skip connections by concatenation); input side divisible by 8."""

    def __init__(self):
        super().__init__()
        self.dw1, self.dw2, self.dw3 = _down(1, 16), _down(16, 32), _down(32, 64)
        self.up1, self.up2 = _up(64, 32), _up(64, 16)
        self.out = nn.Sequential(
            nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1), _lrelu(),
            nn.Conv2d(16, 16, 3, padding=1), _lrelu(), nn.Conv2d(16, 3, 1))

    def forward(self, x):
        if x.shape[-2] % 8 or x.shape[-1] % 8:
            raise UsageError(f"the coloru colorizer needs image sides divisible by 8, got {tuple(x.shape[-2:])}; "
                             f"set train.image_size to a multiple of 8")
        d1 = self.dw1(x)
        d2 = self.dw2(d1)
        u1 = self.up1(self.dw3(d2))
        u2 = self.up2(torch.cat([d2, u1], 1))
        return self.out(torch.cat([d1, u2], 1))


@register(NO_COLORIZER[0])
class Replicate(nn.Module):
    """No colorization: the normalised gray channel repeated to 3 channels."""

    def forward(self, x):
        return x.expand(-1, 3, -1, -1)


register(NO_COLORIZER[1])(type("Gray", (Replicate,), {"__doc__": f"Alias of `{NO_COLORIZER[0]}`."}))


@register("conv1x1")
class Conv1x1(nn.Module):
    """The cheapest learned colorizer: a 1 -> 3 channel linear map (3 weights + 3 biases), starting as `none`."""

    def __init__(self):
        super().__init__()
        self.mix = nn.Conv2d(1, 3, 1)
        nn.init.ones_(self.mix.weight)
        nn.init.zeros_(self.mix.bias)

    def forward(self, x):
        return self.mix(x)


@register("stemsum")
class StemSum(nn.Module):
    """No colorizer: the backbone's stem takes the gray channel itself, its RGB kernels summed from the ImageNet
    weights (timm's adapt_input_conv, what timm and fastai do for in_chans=1). The same function as `none` at the
    start, with a third of the stem's weights."""

    backbone_in_chans = 1

    def forward(self, x):
        return x


class _FixedFrontEnd(nn.Module):
    """Parameter-free pseudo-colour baselines work on intensities in [0, 1]: the input is de-normalised with the
    data's statistics, and each output channel is re-centred the same way (x - mean) / std."""

    def __init__(self, mean: float, std: float):
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, x):
        v = x * self.std + self.mean
        return (self.channels(v) - self.mean) / self.std


@register("window")
class WindowColorizer(_FixedFrontEnd):
    """Three intensity windows, one per channel: the full range, a mid-tone (soft tissue) and a bright (bone) window."""

    WINDOWS = ((0.0, 1.0), (0.25, 0.75), (0.5, 1.0))

    def channels(self, v):
        return torch.cat([((v - lo) / (hi - lo)).clamp(0, 1) for lo, hi in self.WINDOWS], dim=1)


@register("filters")
class FiltersColorizer(_FixedFrontEnd):
    """Identity, Gaussian blur (5x5, sigma 1) and Laplacian edges (3x3), one per channel; kernels are buffers."""

    def __init__(self, mean: float, std: float):
        super().__init__(mean, std)
        g = torch.exp(-torch.arange(-2, 3, dtype=torch.float32) ** 2 / 2)
        gauss = torch.outer(g, g) / torch.outer(g, g).sum()
        lap = torch.zeros(5, 5)
        lap[1:4, 1:4] = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
        ident = torch.zeros(5, 5)
        ident[2, 2] = 1.0
        self.register_buffer("kernels", torch.stack([ident, gauss, lap])[:, None])

    def channels(self, v):
        out = F.conv2d(F.pad(v, (2, 2, 2, 2), mode="reflect"), self.kernels)
        return torch.cat([out[:, :2], out[:, 2:] + 0.5], dim=1)  # edges centred on mid-grey
