"""Typed configuration: the validated form of a recipe that the builders take (YAML -> dataclasses -> builders)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ModelConfig:
    backbone: str = "resnet18"
    colorizer: str = "none"
    mode: int = 1
    pretrained: bool = False
    weights: str | None = None
    init_from: str | None = None
    init_parts: list[str] = field(default_factory=lambda: ["colorizer", "body"])
    freeze_bn_stats: bool = False
