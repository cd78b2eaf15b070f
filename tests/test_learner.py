import pytest
import torch

import medcolor
from medcolor.training.learner import optimizer
from medcolor.training.recipes import load_recipe


def test_optimisers_follow_the_sources():
    """Adam with PyTorch's defaults (AECNN), RMSprop with Keras' rho 0.9 and eps 1e-7 (IXI), read back from the
    Learner's optimiser."""

    adam = optimizer(load_recipe("nih14-aecnn-stage2"))([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)
    assert (adam.hypers[0]["mom"], adam.hypers[0]["sqr_mom"], adam.hypers[0]["eps"]) == (0.9, 0.999, 1e-8)
    rms = optimizer(load_recipe("ixi-ae-small-mse"))([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    assert (rms.hypers[0]["sqr_mom"], rms.hypers[0]["eps"]) == (0.9, 1e-7)
    s1, s2 = load_recipe("nih14-aecnn-stage1"), load_recipe("nih14-aecnn-stage2")
    assert (s2.train.opt, s2.train.max_lr, s2.train.schedule) == (s1.train.opt, s1.train.max_lr, s1.train.schedule)
    fmix = load_recipe("nih14-aecnn-stage1-fmix")
    assert fmix.train.mix == "fmix" and not fmix.data.augment  # FMix replaces stage 1's augmentations
    sizes = {f"{a}-{loss}": load_recipe(f"ixi-ae-{a}-{loss}").train.bs for a in ("small", "big", "resnet50")
             for loss in ("mse", "dssim")}
    assert sizes == {"small-mse": 32, "small-dssim": 32, "big-mse": 32, "big-dssim": 24, "resnet50-mse": 8,
                     "resnet50-dssim": 8}
    assert load_recipe("ixi-ae-resnet50-mse").train.opt == "adam"
    # the same read back from a Learner built the way `run` builds it
    learn = medcolor.build_learner(load_recipe("demo", ["train.opt=adam", "train.image_size=32"]))
    learn.create_opt()
    assert (learn.opt.hypers[-1]["mom"], learn.opt.hypers[-1]["sqr_mom"], learn.opt.hypers[-1]["eps"]) == \
        (0.9, 0.999, 1e-8)


def test_speed_options_reach_the_learner():
    """channels_last and torch.compile as asked (compile in place: the state_dict keys stay the model's own);
    mixed precision only on a GPU; fp16 and bf16 together are a usage error."""
    import pytest

    from medcolor.core.errors import UsageError

    learn = medcolor.build_learner(load_recipe("demo", ["train.image_size=32", "train.compile=true"]))
    assert learn.model._compiled_call_impl is not None
    assert all(not k.startswith("_orig_mod") for k in learn.model.state_dict())
    assert hasattr(learn, "channels_last") and not hasattr(learn, "mixed_precision")  # no GPU here
    plain = medcolor.build_learner(load_recipe("demo", ["train.image_size=32", "train.channels_last=false"]))
    assert not hasattr(plain, "channels_last") and plain.model._compiled_call_impl is None
    with pytest.raises(UsageError, match="choose one"):
        medcolor.build_learner(load_recipe("demo", ["train.image_size=32", "train.fp16=true", "train.bf16=true"]))


class GroupSpy:
    """Per epoch: the highest learning rate each optimiser group reached, and whether any body parameter changed."""

    def __new__(cls):
        from fastai.callback.core import Callback

        class Spy(Callback):
            order = 100  # after the schedulers have set this batch's rates

            def before_fit(self):
                self.peak, self.body_changed = [], []

            def before_epoch(self):
                self.peak.append([0.0] * len(self.opt.param_groups))
                from medcolor.nets.models import part_parameters

                self.params = part_parameters(self.learn.model, "body")
                self.body = [p.detach().clone() for p in self.params]

            def before_step(self):
                self.peak[-1] = [max(a, h["lr"]) for a, h in zip(self.peak[-1], self.opt.hypers)]

            def after_epoch(self):
                self.body_changed.append(any(not torch.equal(a, b) for a, b in zip(self.body, self.params)))
        return Spy()


def _fine_tuned(overrides):
    from medcolor.training.learner import build_learner
    from medcolor.nets.modes import named_groups
    from medcolor.training.train import fit

    recipe = load_recipe("demo-mode2", ["model.init_from=null", "train.image_size=32", "train.bs=64",
                                        "data.subset.fraction=0.3", *overrides])
    learn = build_learner(recipe)
    spy = GroupSpy()
    learn.add_cb(spy)
    fit(learn, recipe, None, quiet=True)
    frozen, trainable = named_groups(learn.model, recipe.model.mode)
    return recipe, [part for part, _ in frozen + trainable], spy


def test_lr_mult_gives_the_body_max_lr_over_lr_mult_and_the_new_parts_max_lr():
    recipe, parts, spy = _fine_tuned(["train.lr_mult=100", "train.epochs=2"])
    assert parts == ["body", "colorizer", "head"]
    peaks = dict(zip(parts, (max(epoch[i] for epoch in spy.peak) for i in range(len(parts)))))
    max_lr = recipe.train.max_lr
    assert peaks == pytest.approx({"body": max_lr / 100, "colorizer": max_lr, "head": max_lr})


def test_freeze_epochs_trains_no_body_parameter_first_then_all_of_them():
    _, _, spy = _fine_tuned(["train.freeze_epochs=1", "train.epochs=2"])  # fastai's fine_tune: 1 frozen + 2
    assert spy.body_changed == [False, True, True]
    _, _, plain = _fine_tuned(["train.epochs=1"])
    assert plain.body_changed == [True]


@pytest.mark.parametrize("opt,reference", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_adam_adds_weight_decay_to_the_gradient_and_adamw_decays_apart_as_pytorch_does(opt, reference):
    """Five steps of medcolor's adam / adamw equal torch.optim.Adam (L2 in the gradient) / AdamW (decoupled)."""
    torch.manual_seed(0)
    start, grads = torch.randn(4), [torch.randn(4) for _ in range(5)]
    ours, theirs = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    opt_ours = optimizer(load_recipe("demo", [f"train.opt={opt}"]))([ours], lr=1e-2, wd=0.1)
    opt_ref = reference([theirs], lr=1e-2, weight_decay=0.1, betas=(0.9, 0.999), eps=1e-8)
    for g in grads:
        ours.grad, theirs.grad = g.clone(), g.clone()
        opt_ours.step()
        opt_ref.step()
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_cosine_follows_timms_scheduler_stepped_once_per_epoch_as_medmnist_plus_steps_it():
    """train.schedule cosine: each epoch's rate equals timm's CosineLRScheduler(t_initial=epochs) after
    step(epoch=e - 1), the protocol's loop (epoch 0 at the peak), at any point inside the epoch."""
    from timm.scheduler import CosineLRScheduler

    from medcolor.training.learner import epoch_cosine

    n, peak = 10, 1e-4
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    timm_sched, expected = CosineLRScheduler(opt, t_initial=n, cycle_limit=1, t_in_epochs=True), []
    for epoch in range(n):
        expected.append(opt.param_groups[0]["lr"])
        timm_sched.step(epoch=epoch)
    ours = epoch_cosine(peak, n)
    for epoch in range(n):
        for within in (0.0, 0.5, 0.999):
            assert ours((epoch + within) / n) == pytest.approx(expected[epoch], rel=1e-9)
    assert epoch_cosine([peak, peak / 10], n)(0.35) == pytest.approx([expected[3], expected[3] / 10])


LOGGED_RUN = ["train.epochs=2", "train.image_size=32", "train.bs=64", "train.lr_find=false",
              "data.subset.fraction=0.1"]


def test_tensorboard_logger_trains_a_whole_run_and_logs_every_epoch(tmp_path, capsys):
    pytest.importorskip("tensorboard", reason="tensorboard is an optional extra: pip install 'medcolor[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from medcolor.cli import main

    assert main(["run", "recipe", "demo", *LOGGED_RUN, "train.loggers=[csv,tensorboard]", "--runs-dir",
                 str(tmp_path)]) == 0
    (run,) = (tmp_path / "demo").iterdir()
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert len(events.Scalars("valid_loss")) == len(events.Scalars("mean_auc")) == 2
    assert (run / "history.csv").is_file() and (run / "metrics.json").is_file()


def test_wandb_logger_starts_its_own_run_named_for_the_folder(tmp_path, capsys, monkeypatch):
    pytest.importorskip("wandb", reason="wandb is an optional extra: pip install 'medcolor[wandb]'")
    from medcolor.cli import main

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    assert main(["run", "recipe", "demo", *LOGGED_RUN, "train.loggers=[wandb]", "--runs-dir", str(tmp_path)]) == 0
    (run,) = (tmp_path / "demo").iterdir()
    (record,) = run.glob("wandb/offline-run-*/run-*.wandb")
    logged = record.read_bytes()
    assert run.name.encode() in logged and b"max_lr" in logged and b"mean_auc" in logged
    assert (run / "metrics.json").is_file()
