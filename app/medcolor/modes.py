"""Transfer modes as a fastai splitter plus a freeze plan (docs/design.md, "Transfer modes").

The splitter puts the frozen parts first, so fastai's own `freeze_to(n_frozen)` freezes exactly them
(requires_grad False, so fastai's optimiser skips them). Two mode-1 options loosen it: fastai's own train_bn
(`model.train_bn`) keeps the frozen parts' BatchNorm affine parameters trainable, and `model.train_stem` moves
the backbone's stem into a trainable group.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .errors import UsageError
from .models import PARTS, part_parameters


@dataclass(frozen=True)
class Mode:
    number: int
    frozen: tuple[str, ...]
    description: str

    @property
    def trainable(self) -> tuple[str, ...]:
        return tuple(p for p in PARTS if p not in self.frozen)


MODES = {
    1: Mode(1, ("body",), "colorizer + head trained, backbone body frozen (BN affine too)"),
    2: Mode(2, (), "everything trained (from the mode-1 result with a new head)"),
    3: Mode(3, ("colorizer", "body"), "head only (colorizer and backbone from another run)"),
}


def get_mode(number: int) -> Mode:
    if number not in MODES:
        raise UsageError(f"unknown transfer mode {number!r}; use 1, 2 or 3")
    return MODES[number]


def stem_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The backbone's stem, as timm's group_matcher names it (resnet: conv1, bn1; efficientnet: conv_stem, bn1)."""
    import re

    backbone = getattr(model, "backbone", None)
    if backbone is None or not hasattr(backbone, "group_matcher"):
        return []
    stem = re.compile(backbone.group_matcher()["stem"])
    return [p for k, p in backbone.named_parameters() if stem.match(k)]


def _frozen_and_trainable(model: nn.Module, mode: int, train_stem: bool):
    """(frozen groups, trainable groups), empty ones (colorizer `none`) left out. With train_stem the backbone's
    stem leaves the frozen body for a trainable group of its own."""
    m = get_mode(mode)
    stem = stem_parameters(model) if train_stem and "body" in m.frozen else []
    in_stem = {id(p) for p in stem}
    frozen = [[p for p in part_parameters(model, part) if id(p) not in in_stem] for part in m.frozen]
    trainable = [stem] + [part_parameters(model, part) for part in m.trainable]
    return [g for g in frozen if g], [g for g in trainable if g]


def param_groups(model: nn.Module, mode: int, train_stem: bool = False) -> list[list[nn.Parameter]]:
    """Parameter groups in freeze order (frozen parts first)."""
    frozen, trainable = _frozen_and_trainable(model, mode, train_stem)
    return frozen + trainable


def n_frozen_groups(model: nn.Module, mode: int, train_stem: bool = False) -> int:
    return len(_frozen_and_trainable(model, mode, train_stem)[0])


def splitter_for(mode: int, train_stem: bool = False):
    """A fastai splitter (model -> parameter groups) for this mode."""
    def splitter(model):
        return param_groups(model, mode, train_stem)
    return splitter


def apply_mode(learn, mode: int, train_stem: bool = False) -> None:
    """Freeze the mode's frozen parts on a fastai Learner built with `splitter_for(mode)`; BatchNorm affine
    parameters of frozen parts stay frozen unless the Learner has fastai's train_bn=True (model.train_bn)."""
    n = n_frozen_groups(learn.model, mode, train_stem)
    if n:
        learn.freeze_to(n)
    else:
        learn.unfreeze()


def trainable_parameters(model: nn.Module, mode: int, train_bn: bool = False, train_stem: bool = False) -> set[int]:
    """ids of the parameters a mode trains: what `model summary` counts and the mode tests check."""
    from fastai.torch_core import norm_bias_params

    frozen_groups, trainable_groups = _frozen_and_trainable(model, mode, train_stem)
    ids = {id(p) for g in trainable_groups for p in g}
    frozen = {id(p) for g in frozen_groups for p in g}
    return ids | ({id(p) for p in norm_bias_params(model, with_bias=False)} & frozen if train_bn else set())


def bn_callbacks(freeze_bn_stats: bool) -> list:
    """fastai's BnFreeze keeps the running statistics of frozen BatchNorm layers fixed (eval mode in training)."""
    if not freeze_bn_stats:
        return []
    from fastai.callback.training import BnFreeze
    return [BnFreeze()]
