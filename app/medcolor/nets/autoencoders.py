"""The related systems' models: convolutional autoencoders for brain MRI slices and the AECNN learned compression
front end. Layer plans follow the sources; sizes are checked in tests the Keras way. Their names are in
core.archs.ARCHS, their builders in models.BUILDERS."""
from __future__ import annotations

import torch
from torch import nn


def keras_param_count(model: nn.Module) -> int:
    """Parameters plus BatchNorm running mean and variance: how the source's Keras summaries counted."""
    stats = sum(m.running_mean.numel() + m.running_var.numel() for m in model.modules()
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None)
    return sum(p.numel() for p in model.parameters()) + stats


class ResidualBlock(nn.Module):
    """Conv k3 -> BN -> ReLU -> Conv k3 -> BN, plus a 1x1 conv + BN shortcut when strided; add; ReLU. No biases."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)) \
            if stride != 1 or cin != cout else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.body(x) + self.shortcut(x))


def up_block(cin: int, cout: int) -> nn.Sequential:
    """ConvTranspose k3 s2 ('same', no bias) -> BN -> ReLU: doubles the side."""
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 3, 2, 1, output_padding=1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ResNetAutoencoder(nn.Module):
    """Conv 1->32 s2, residual blocks, 4 up blocks (256, 128, 64, 32), Conv 32->1; output has the input's size."""

    def __init__(self, blocks: list[tuple[int, int]]):
        super().__init__()
        layers, cin = [nn.Conv2d(1, 32, 3, 2, 1, bias=False)], 32
        for cout, stride in blocks:
            layers.append(ResidualBlock(cin, cout, stride))
            cin = cout
        self.encoder = nn.Sequential(*layers)
        ups, cin = [], cin
        for cout in (256, 128, 64, 32):
            ups.append(up_block(cin, cout))
            cin = cout
        self.decoder = nn.Sequential(*ups, nn.Conv2d(32, 1, 3, 1, 1, bias=False))

    def forward(self, x):
        return self.decoder(self.encoder(x))


SMALL = [(64, 2), (64, 1), (128, 2), (256, 2)]
BIG = [(64, 2), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (256, 1), (256, 1)]


class TimmAutoencoder(nn.Module):
    """A timm body (resnet50: 2048 channels at 1/32) as encoder; 5 up blocks. Like the source (seed 002) it takes
    and returns 3 channels: a gray slice is repeated to 3 channels, and losses compare each output channel with it."""

    def __init__(self, name: str = "resnet50", pretrained: bool = False, weights=None, tag=None):
        super().__init__()
        from .backbones import create_backbone

        body = create_backbone(name, 1, pretrained=pretrained, weights=weights, tag=tag)
        body.reset_classifier(0, "")
        self.encoder = body
        ups, cin = [], body.num_features
        for cout in (512, 256, 128, 64, 32):
            ups.append(up_block(cin, cout))
            cin = cout
        self.decoder = nn.Sequential(*ups, nn.Conv2d(32, 3, 3, 1, 1, bias=False))

    def forward(self, x):
        return self.decoder(self.encoder.forward_features(x.expand(-1, 3, -1, -1)))


class AECNNFrontEnd(nn.Module):
    """Encoder Conv 1->32 k5 s4 -> ELU -> Conv 32->1 (the latent, 1/4 side), replicated to 3 ImageNet-normalised
    channels for the classifier; the decoder Conv 1->16 k3 -> PixelShuffle(4) -> clip [0, 1] reconstructs the input
    and is kept in `self.reconstruction` for the auxiliary loss."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(1, 32, 5, 4, 2), nn.ELU(), nn.Conv2d(32, 1, 1))
        self.decoder = nn.Sequential(nn.Conv2d(1, 16, 3, 1, 1), nn.PixelShuffle(4))
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.reconstruction = None

    def reconstruct(self, x):
        return self.decoder(self.encoder(x)).clamp(0, 1)

    def forward(self, x):
        latent = self.encoder(x)
        self.reconstruction = self.decoder(latent).clamp(0, 1)
        return (latent.expand(-1, 3, -1, -1) - self.mean) / self.std


class FrontEndAutoencoder(nn.Module):
    """Stage 2 of AECNN: the front end's encoder + decoder alone (keys colorizer.* as in the full model)."""

    def __init__(self):
        super().__init__()
        self.colorizer = AECNNFrontEnd()

    def forward(self, x):
        return self.colorizer.reconstruct(x)
