"""Transfer modes as a fastai splitter plus a freeze plan (docs/design.md, "Transfer modes").

The splitter puts the frozen parts first, so fastai's own `freeze_to(n_frozen)` freezes exactly them
(requires_grad False, so fastai's optimiser skips them). Two mode-1 options loosen it: fastai's own train_bn
(`model.train_bn`) keeps the frozen parts' BatchNorm affine parameters trainable, and `model.train_stem` moves
the backbone's stem into a trainable group. Fine-tuning (mode 2) takes fastai's small-data tools: discriminative
learning rates per group (`train.lr_mult`), the body frozen for the first epochs (`train.freeze_epochs`, as
fastai's `fine_tune`) and BatchNorm statistics kept (`model.freeze_bn_stats`).
"""
from __future__ import annotations

from torch import nn

from ..core.archs import PARTS, get_arch, get_mode
from .models import part_parameters


def stem_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The backbone's stem, as timm's group_matcher names it (resnet: conv1, bn1; efficientnet: conv_stem, bn1)."""
    import re

    backbone = getattr(model, "backbone", None)
    if backbone is None or not hasattr(backbone, "group_matcher"):
        return []
    stem = re.compile(backbone.group_matcher()["stem"])
    return [p for k, p in backbone.named_parameters() if stem.match(k)]


BODY = ("stem", "body")  # the backbone's pretrained layers: what discriminative rates slow and fine-tuning freezes


def named_groups(model: nn.Module, mode: int, train_stem: bool = False):
    """(frozen, trainable) parameter groups as (part, parameters), empty ones (colorizer `none`) left out; the
    trainable ones start with the body, which fine-tuning (train.freeze_epochs) freezes first. With train_stem the
    backbone's stem leaves the frozen body for a trainable group of its own."""
    m = get_mode(mode)
    stem = stem_parameters(model) if train_stem and "body" in m.frozen else []
    in_stem = {id(p) for p in stem}
    frozen = [(part, [p for p in part_parameters(model, part) if id(p) not in in_stem]) for part in m.frozen]
    trainable = [("stem", stem)] + [(part, part_parameters(model, part))
                                    for part in sorted(m.trainable, key=lambda part: part != "body")]
    return [g for g in frozen if g[1]], [g for g in trainable if g[1]]


def _frozen_and_trainable(model: nn.Module, mode: int, train_stem: bool):
    frozen, trainable = named_groups(model, mode, train_stem)
    return [g for _, g in frozen], [g for _, g in trainable]


def param_groups(model: nn.Module, mode: int, train_stem: bool = False) -> list[list[nn.Parameter]]:
    """Parameter groups in freeze order (frozen parts first)."""
    frozen, trainable = _frozen_and_trainable(model, mode, train_stem)
    return frozen + trainable


def n_frozen_groups(model: nn.Module, mode: int, train_stem: bool = False) -> int:
    return len(_frozen_and_trainable(model, mode, train_stem)[0])


def part_lr(part: str, max_lr: float, lr_mult: float) -> float:
    """Discriminative learning rates: the body's (and stem's) max_lr / lr_mult, a new colorizer's and the head's
    max_lr - fastai's slice(max_lr / lr_mult, max_lr) with the colorizer beside the head."""
    return max_lr / lr_mult if part in BODY else max_lr


def group_lrs(model: nn.Module, mode: int, train_stem: bool, max_lr: float, lr_mult: float) -> list[float]:
    """One learning rate per parameter group (part_lr), in the splitter's order."""
    frozen, trainable = named_groups(model, mode, train_stem)
    return [part_lr(part, max_lr, lr_mult) for part, _ in frozen + trainable]


def n_body_groups(model: nn.Module, mode: int) -> int:
    """Leading groups that freezing the body for fine-tuning freezes (mode 2: the body's one)."""
    return 1 if get_mode(mode).trains("body") and part_parameters(model, "body") else 0


def splitter_for(mode: int, train_stem: bool = False):
    """A fastai splitter (model -> parameter groups) for this mode."""
    def splitter(model):
        return param_groups(model, mode, train_stem)
    return splitter


def apply_mode(learn, mode: int, train_stem: bool = False, body_frozen: bool = False) -> None:
    """Freeze the mode's frozen parts on a fastai Learner built with `splitter_for(mode)` (with body_frozen, the
    body too: fine-tuning's first epochs); BatchNorm affine parameters of frozen parts stay frozen unless the
    Learner has fastai's train_bn=True (model.train_bn)."""
    import warnings

    n = n_frozen_groups(learn.model, mode, train_stem) or (n_body_groups(learn.model, mode) if body_frozen else 0)
    if not n:
        learn.unfreeze()
        return
    with warnings.catch_warnings():  # nothing left to train is a k-NN head's design, not a mistake fastai should name
        warnings.filterwarnings("ignore", message="Freezing .* whole model is frozen")
        learn.freeze_to(n)


def trainable_parameters(model: nn.Module, mode: int, train_bn: bool = False, train_stem: bool = False) -> set[int]:
    """ids of the parameters a mode trains: what `model summary` counts and the mode tests check."""
    from fastai.torch_core import norm_bias_params

    frozen_groups, trainable_groups = _frozen_and_trainable(model, mode, train_stem)
    ids = {id(p) for g in trainable_groups for p in g}
    frozen = {id(p) for g in frozen_groups for p in g}
    return ids | ({id(p) for p in norm_bias_params(model, with_bias=False)} & frozen if train_bn else set())


def rate_plan(model_cfg, train_cfg) -> dict[str, str]:
    """In words, what each part with parameters trains at (the one-cycle peak): 'frozen', '5.0e-02', or the body's
    '5.0e-04 (max_lr / 100) after 1 epoch frozen' - what `recipes show` and `model summary` print."""
    from .colorizers import create_colorizer

    m, t = get_mode(model_cfg.mode), train_cfg
    has_colorizer = get_arch(model_cfg.arch).front_end or \
        any(True for _ in create_colorizer(model_cfg.colorizer).parameters())
    plan = {}
    for part in (p for p in PARTS if p != "colorizer" or has_colorizer):
        body = part == "body"
        rate = f"{part_lr(part, t.max_lr, t.lr_mult):.1e}" + \
            (f" (max_lr / {t.lr_mult:g})" if body and t.lr_mult != 1 else "")
        if part in m.frozen:
            plan[part] = "frozen" + (f" (its stem: {rate})" if body and model_cfg.train_stem else "")
        else:
            plan[part] = rate + (f" after {t.freeze_epochs} epoch(s) frozen" if body and t.freeze_epochs else "")
    return plan
