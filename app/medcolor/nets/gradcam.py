"""Grad-CAM (Selvaraju et al. 2017) on a backbone feature map, per label: the last one, or at small inputs the
deepest stage whose map is at least 7 x 7 (timm's `feature_info` names the stages).

By hand, with torch autograd on timm's own split of a model (`forward_features` -> `forward_head`): the
`grad-cam` package would add OpenCV as a dependency for these few lines, and fastai's hooks are not needed
when timm already exposes the feature map."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def members_of(model) -> list:
    """The networks of an ensemble (models.MeanOfMembers), or the model itself."""
    return [m.model for m in model.members] if hasattr(model, "members") else [model]


def has_feature_map(model) -> bool:
    return all(hasattr(m, "colorizer") and hasattr(getattr(m, "backbone", None), "forward_features")
               for m in members_of(model))


MIN_SIDE = 7  # a map smaller than this says little about where: at 64 px the last one of most backbones is 2 x 2


def cam_layer(model, side: int, layer: str | None = None) -> str | None:
    """The backbone module whose output Grad-CAM uses: `layer` when given (checked), else None (the last feature
    map) when that map is at least MIN_SIDE wide, else the deepest of timm's `feature_info` stages that is."""
    from ..core.errors import UsageError

    model = members_of(model)[0]
    modules = dict(model.backbone.named_modules())
    if layer is not None:
        if layer not in modules:
            stages = [f["module"] for f in getattr(model.backbone, "feature_info", [])]
            raise UsageError(f"--layer {layer!r} is not a module of the backbone; its stages are {', '.join(stages)}")
        return layer
    stages = list(getattr(model.backbone, "feature_info", []) or [])
    if not stages or side / stages[-1]["reduction"] >= MIN_SIDE:
        return None
    wide = [f for f in stages if side / f["reduction"] >= MIN_SIDE and f["module"] in modules]
    return (wide or stages[:1])[-1]["module"]


def grad_cam(model, xb: torch.Tensor, label: int, layer: str | None = None) -> torch.Tensor:
    """(n, h, w) heat maps in [0, 1] at the input's size: ReLU of the feature maps (the last ones, or those of
    the backbone module `layer`) weighted by the mean gradient of `label`'s logit. An ensemble's: the mean of its
    members' maps (each on `layer` when it has it, else on the layer cam_layer picks for it)."""
    if hasattr(model, "members"):
        maps = [grad_cam(m, xb, label, layer if layer in dict(m.backbone.named_modules()) else
                         cam_layer(m, xb.shape[-1])) for m in members_of(model)]
        cam = torch.stack(maps).mean(0)
        return cam / cam.flatten(1).amax(1).clamp(min=1e-12)[:, None, None]
    model.eval()
    with torch.enable_grad():
        x = xb.detach().clone().requires_grad_(True)  # a graph even when every parameter is frozen
        if layer is None:
            feats = model.backbone.forward_features(model.colorizer(x))
            logits = model.backbone.forward_head(feats)
        else:
            seen = []
            hook = dict(model.backbone.named_modules())[layer].register_forward_hook(lambda m, i, o: seen.append(o))
            try:
                logits = model(x)
            finally:
                hook.remove()
            feats = seen[0]
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
