"""Grad-CAM (Selvaraju et al. 2017) on the backbone's last convolutional feature map, per label.

By hand, with torch autograd on timm's own split of a model (`forward_features` -> `forward_head`): the
`grad-cam` package would add OpenCV as a dependency for these few lines, and fastai's hooks are not needed
when timm already exposes the feature map."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def has_feature_map(model) -> bool:
    return hasattr(model, "colorizer") and hasattr(getattr(model, "backbone", None), "forward_features")


def grad_cam(model, xb: torch.Tensor, label: int) -> torch.Tensor:
    """(n, h, w) heat maps in [0, 1] at the input's size: ReLU of the feature maps weighted by the mean gradient
    of `label`'s logit."""
    model.eval()
    with torch.enable_grad():
        x = xb.detach().clone().requires_grad_(True)  # a graph even when every parameter is frozen
        feats = model.backbone.forward_features(model.colorizer(x))
        logits = model.backbone.forward_head(feats)
        grads, = torch.autograd.grad(logits[:, label].sum(), feats)
    cam = F.relu((grads.mean((2, 3), keepdim=True) * feats).sum(1, keepdim=True)).detach()
    cam = F.interpolate(cam.float(), size=xb.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return cam / cam.flatten(1).amax(1).clamp(min=1e-12)[:, None, None]


def colorized(model, xb: torch.Tensor) -> torch.Tensor:
    """The colorizer's output as (n, h, w, 3) in [0, 1] per image, for display beside the heat maps."""
    with torch.no_grad():
        rgb = model.colorizer(xb).float().expand(-1, 3, -1, -1).permute(0, 2, 3, 1)
    lo, hi = rgb.flatten(1, 2).amin(1)[:, None, None], rgb.flatten(1, 2).amax(1)[:, None, None]
    return ((rgb - lo) / (hi - lo + 1e-8)).cpu()
