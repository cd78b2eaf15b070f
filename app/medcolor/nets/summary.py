"""`medcolor model summary`: parameters per part (total / trainable in a mode), MACs, output shape."""
from __future__ import annotations

import torch

from ..core.config import ModelConfig
from ..core.errors import UsageError
from ..core.archs import ARCHS
from .models import PARTS, ColorNet, build_model, part_parameters
from .modes import trainable_parameters


def count_macs(module: torch.nn.Module, x: torch.Tensor) -> tuple[int, torch.Tensor]:
    """Multiply-accumulates of one forward pass (torch's FlopCounterMode counts 2 FLOPs per MAC)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        y = module(x)
    return counter.get_total_flops() // 2, y


def check_sizes(n_out: int, image_size: int) -> None:
    if n_out < 1:
        raise UsageError(f"--n-out must be at least 1 output, got {n_out}")
    if not 8 <= image_size <= 4096:
        raise UsageError(f"--image-size must be between 8 and 4096 pixels, got {image_size}")


def summarize_colornet(cfg: ModelConfig, n_out: int, image_size: int, train=None) -> dict:
    """Counts and MACs; with a recipe's `train` section, the learning rate of each part too."""
    from .modes import rate_plan

    check_sizes(n_out, image_size)
    model = build_model(cfg, n_out).eval()
    return {"backbone": cfg.backbone, "colorizer": cfg.colorizer, "mode": cfg.mode, "n_out": n_out,
            "image_size": image_size, "train_bn": cfg.train_bn, "train_stem": cfg.train_stem,
            **_counts(model, cfg.mode, cfg.train_bn, cfg.train_stem), **_macs(model, image_size),
            **({"learning_rates": rate_plan(cfg, train)} if train is not None else {})}


def summarize_arch(arch: str, n_out: int, image_size: int, backbone: str | None = None) -> dict:
    """Section-6 models (ae-small, ae-big, ae-resnet50, aecnn), all parameters trainable; Keras-style size too.
    `backbone` replaces the body of those that have one (default: the thesis's); the others refuse it."""
    from .autoencoders import keras_param_count

    check_sizes(n_out, image_size)
    entry = ARCHS.get(arch)
    if backbone and not entry.backbone:
        raise UsageError(f"--backbone is not used by {arch} (it has its own encoder)")
    cfg = ModelConfig(arch=arch, backbone=backbone or entry.thesis_body or "resnet50", mode=2)
    model = build_model(cfg, n_out).eval()
    x = torch.zeros(1, 1, image_size, image_size)
    macs, y = count_macs(model, x)
    total = sum(p.numel() for p in model.parameters())
    return {"model": arch, "backbone": cfg.backbone if entry.thesis_body else None, "mode": 2,
            "image_size": image_size, "trainable_params": total, "total_params": total,
            "total_params_keras": keras_param_count(model), **_counts(model, 2),
            "macs": {"total": macs}, "output_shape": list(y.shape)}


def _counts(model, mode: int, train_bn: bool = False, train_stem: bool = False) -> dict:
    trainable = trainable_parameters(model, mode, train_bn, train_stem)
    parts = {}
    for part in PARTS:
        params = part_parameters(model, part)
        parts[part] = {"total": sum(p.numel() for p in params),
                       "trainable": sum(p.numel() for p in params if id(p) in trainable)}
    return {"trainable_params": sum(p["trainable"] for p in parts.values()),
            "total_params": sum(p["total"] for p in parts.values()), "parts": parts}


def _macs(model: ColorNet, image_size: int) -> dict:
    x = torch.zeros(1, 1, image_size, image_size)
    colorizer_macs, rgb = count_macs(model.colorizer, x)
    backbone_macs, y = count_macs(model.backbone, rgb)
    return {"macs": {"colorizer": colorizer_macs, "backbone": backbone_macs, "total": colorizer_macs + backbone_macs},
            "output_shape": list(y.shape)}


def format_summary(s: dict) -> str:
    if "model" in s:
        body = f" ({s['backbone']} body)" if s.get("backbone") else ""
        return (f"{s['model']}{body}: {s['total_params']:,} parameters ({s['total_params_keras']:,} counting BatchNorm "
                f"running statistics, as Keras does); {s['macs']['total'] / 1e9:.2f} G MACs at "
                f"{s['image_size']} px; output {tuple(s['output_shape'])}")
    options = "".join(f", {o}" for o in ("train_bn", "train_stem") if s.get(o))
    rates = s.get("learning_rates", {})
    lines = [f"{s['backbone']} + {s['colorizer']} colorizer, mode {s['mode']}{options}, {s['n_out']} outputs, "
             f"{s['image_size']}x{s['image_size']} input",
             f"{'part':<10} {'trainable':>12} {'total':>12}" + ("  learning rate (one-cycle peak)" if rates else "")]
    for part, c in s["parts"].items():
        rate = f"  {rates.get(part, '-')}" if rates else ""
        lines.append(f"{part:<10} {c['trainable']:>12,} {c['total']:>12,}{rate}")
    lines.append(f"{'all':<10} {s['trainable_params']:>12,} {s['total_params']:>12,}")
    m = s["macs"]
    share = m["colorizer"] / max(m["backbone"], 1)
    lines.append(f"MACs: colorizer {m['colorizer'] / 1e9:.2f} G + backbone {m['backbone'] / 1e9:.2f} G = "
                 f"{m['total'] / 1e9:.2f} G per image (colorizer adds {share:.0%} to the backbone's cost)")
    lines.append(f"output shape: {tuple(s['output_shape'])}")
    return "\n".join(lines)
