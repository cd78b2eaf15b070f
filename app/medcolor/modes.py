"""Transfer modes as a fastai splitter plus a freeze plan (docs/design.md, "Transfer modes").

The splitter puts the frozen parts first, so fastai's own `freeze_to(n_frozen)` freezes exactly them
(requires_grad False, so fastai's optimiser skips them); the Learner is built with train_bn=False so the
frozen parts' BatchNorm affine parameters stay frozen too.
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


def param_groups(model: nn.Module, mode: int) -> list[list[nn.Parameter]]:
    """Parameter groups in freeze order (frozen parts first); empty parts (colorizer `none`) are left out."""
    m = get_mode(mode)
    groups = [part_parameters(model, part) for part in m.frozen + m.trainable]
    return [g for g in groups if g]


def n_frozen_groups(model: nn.Module, mode: int) -> int:
    return sum(1 for part in get_mode(mode).frozen if part_parameters(model, part))


def splitter_for(mode: int):
    """A fastai splitter (model -> parameter groups) for this mode."""
    def splitter(model):
        return param_groups(model, mode)
    return splitter


def apply_mode(learn, mode: int) -> None:
    """Freeze the mode's frozen parts on a fastai Learner built with `splitter_for(mode)` and train_bn=False."""
    n = n_frozen_groups(learn.model, mode)
    if n:
        learn.freeze_to(n)
    else:
        learn.unfreeze()


def bn_callbacks(freeze_bn_stats: bool) -> list:
    """fastai's BnFreeze keeps the running statistics of frozen BatchNorm layers fixed (eval mode in training)."""
    if not freeze_bn_stats:
        return []
    from fastai.callback.training import BnFreeze
    return [BnFreeze()]
