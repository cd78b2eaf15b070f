import pytest
import torch
from torch import nn

from medcolor.core.config import ModelConfig
from medcolor.nets.models import build_model, part_parameters
from medcolor.training.callbacks import bn_callbacks
from medcolor.core.archs import MODES
from medcolor.nets.modes import apply_mode, splitter_for


def one_step_learner(model, mode, batch, freeze_bn_stats=False, train_bn=False, train_stem=False):
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    import fastai.callback.progress  # noqa: F401  (adds Learner.no_bar)
    from fastai.learner import Learner
    from fastai.optimizer import SGD

    ds = list(zip(*batch))
    dls = DataLoaders(DataLoader(ds, bs=len(ds)), DataLoader(ds, bs=len(ds)))
    learn = Learner(dls, model, loss_func=nn.BCEWithLogitsLoss(), opt_func=SGD, splitter=splitter_for(mode, train_stem),
                    train_bn=train_bn, cbs=bn_callbacks(freeze_bn_stats))
    apply_mode(learn, mode, train_stem)
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, lr=0.1)
    return learn


def pretrained_like(model):
    """timm zero-initialises each residual block's last BN gamma, which blocks gradients for one step;
    pretrained backbones have non-zero gammas, so give them ones."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
    return model


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("mode", [1, 2, 3])
def test_exactly_the_trainable_parts_change_after_one_step(mode, real_batch):
    torch.manual_seed(0)
    model = pretrained_like(build_model(ModelConfig(backbone="resnet18", colorizer="coloru"), n_out=5))
    before = snapshot(model)
    one_step_learner(model, mode, real_batch)
    trainable = set(MODES[mode].trainable)
    for name, p in model.named_parameters():
        changed = not torch.equal(p.detach(), before[name])
        assert changed == (model.part_of(name) in trainable), f"mode {mode}: {name} changed={changed}"
        assert p.requires_grad == (model.part_of(name) in trainable)


def test_frozen_parameters_are_not_updated_by_the_optimiser(real_batch):
    model = build_model(ModelConfig(colorizer="coloru"), n_out=5)
    learn = one_step_learner(model, 1, real_batch)
    stepped = {id(p) for p, *_ in learn.opt.all_params(with_grad=True)}
    assert stepped == {id(p) for p in part_parameters(model, "colorizer") + part_parameters(model, "head")}


def _bn_buffers(model, part):
    return {k: v.clone() for k, v in model.state_dict().items()
            if model.part_of(k) == part and k.endswith("running_mean")}


@pytest.mark.parametrize("mode,freeze_bn_stats,body_kept", [(1, False, False), (1, None, True), (1, True, True),
                                                             (2, False, False), (2, None, False), (2, True, True)])
def test_bn_running_statistics_follow_freeze_bn_stats(mode, freeze_bn_stats, body_kept, real_batch):
    """null keeps frozen parts' statistics (fastai's BnFreeze); true keeps the body's in mode 2 too, where its
    weights train; a trainable colorizer always updates its own."""
    model = pretrained_like(build_model(ModelConfig(colorizer="coloru"), n_out=5))
    body, colorizer = _bn_buffers(model, "body"), _bn_buffers(model, "colorizer")
    weights = {k: v.detach().clone() for k, v in model.named_parameters() if model.part_of(k) == "body"}
    one_step_learner(model, mode, real_batch, freeze_bn_stats=freeze_bn_stats)
    body_after, colorizer_after = _bn_buffers(model, "body"), _bn_buffers(model, "colorizer")
    assert all(torch.equal(body[k], body_after[k]) for k in body) == body_kept
    assert all(not torch.equal(colorizer[k], colorizer_after[k]) for k in colorizer)
    trained = any(not torch.equal(v, dict(model.named_parameters())[k]) for k, v in weights.items())
    assert trained == (mode == 2)


def test_mode_without_colorizer_parameters_still_freezes_body(real_batch):
    model = build_model(ModelConfig(colorizer="none"), n_out=5)
    before = snapshot(model)
    one_step_learner(model, 1, real_batch)
    for name, p in model.named_parameters():
        assert torch.equal(p.detach(), before[name]) == (model.part_of(name) == "body")


BN_AFFINE = (".bn", "bn1.", "bn2.", "downsample.1.")


@pytest.mark.parametrize("colorizer,options,expected", [
    ("conv1x1", {}, lambda part, name: part in ("colorizer", "head")),
    ("stemsum", {}, lambda part, name: part == "head"),
    ("coloru", {"train_bn": True},
     lambda part, name: part in ("colorizer", "head") or any(b in name for b in BN_AFFINE)),
    ("coloru", {"train_stem": True},
     lambda part, name: part in ("colorizer", "head") or name.startswith(("backbone.conv1.", "backbone.bn1."))),
])
def test_cheap_baselines_and_mode_1_options_train_exactly_their_parameters(real_batch, colorizer, options, expected):
    from medcolor.nets.modes import trainable_parameters

    torch.manual_seed(0)
    model = pretrained_like(build_model(ModelConfig(backbone="resnet18", colorizer=colorizer), n_out=5))
    before = snapshot(model)
    planned = trainable_parameters(model, 1, **options)
    one_step_learner(model, 1, real_batch, **options)
    for name, p in model.named_parameters():
        changed = not torch.equal(p.detach(), before[name])
        should = expected(model.part_of(name), name)
        assert changed == should == (id(p) in planned), f"{colorizer} {options}: {name} changed={changed}"


def test_frozen_batchnorm_keeps_imagenet_statistics_by_default(real_batch):
    """The default: a frozen body's BatchNorm layers run in eval mode (fastai's BnFreeze), so head-only training
    sees the features a linear probe would; thesis recipes set freeze_bn_stats: false, as the thesis had it."""
    from medcolor.training.recipes import load_recipe

    from fastai.callback.training import BnFreeze

    assert ModelConfig().freeze_bn_stats is None and load_recipe("demo").model.freeze_bn_stats is None
    assert [type(cb) for cb in bn_callbacks(None)] == [BnFreeze]
    assert load_recipe("chexpert-deconv-mode1").model.freeze_bn_stats is False
