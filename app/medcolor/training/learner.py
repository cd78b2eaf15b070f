"""Recipe -> DataLoaders -> fastai Learner, exactly as `medcolor run` trains it (the Python API too): the task's
data and head, the model and its starting weights, the transfer mode's splitter and freezing, the optimiser, the
callbacks a recipe asks for, and the distributed context."""
from __future__ import annotations

import contextlib
import os
import tempfile
from functools import partial
from typing import Callable
from pathlib import Path

import torch

from ..core.archs import get_arch
from ..core.config import Recipe
from ..core.errors import UsageError
from ..core.registry import Registry
from ..tasks.interface import task_of


def auto_workers(setting) -> int:
    if setting is not None:
        return setting
    cores = os.cpu_count() or 1
    return 0 if cores <= 2 else min(8, cores - 1)


def build_data(recipe: Recipe):
    """(DataLoaders, Table): what training reads - the loaders of train / valid and the whole table (test split
    included) that the end of a run is scored on."""
    from fastai.torch_core import default_device, set_seed

    set_seed(recipe.train.seed, reproducible=True)
    return task_of(recipe).build_dls(recipe, auto_workers(recipe.train.num_workers), default_device())


def build_dls(recipe: Recipe):
    """The recipe's fastai DataLoaders (the Python API: `dls.show_batch()`, `Learner(dls, ...)`)."""
    return build_data(recipe)[0]


# train.opt -> (TrainConfig -> fastai opt_func). Adam and AdamW as PyTorch's (betas 0.9 / 0.999, eps 1e-8; fastai's
# are 0.99 / 1e-5): adam adds train.wd to the gradient (torch.optim.Adam's L2, as the AECNN source used it), adamw
# decays the weights apart from it (AdamW, MedMNIST+'s); RMSprop as Keras' (rho 0.9, eps 1e-7; fastai's sqr_mom is
# 0.99), as the IXI source used it.
OPTIMIZERS: Registry[Callable] = Registry("train.opt")


def _adam(decouple_wd: bool):
    from fastai.optimizer import Adam
    return partial(Adam, mom=0.9, sqr_mom=0.999, eps=1e-8, decouple_wd=decouple_wd)


def _sgd(train):
    from fastai.optimizer import SGD
    return partial(SGD, mom=train.mom)


OPTIMIZERS.register("sgd", _sgd)
OPTIMIZERS.register("adam", lambda train: _adam(False))
OPTIMIZERS.register("adamw", lambda train: _adam(True))
OPTIMIZERS.register("rmsprop", lambda train: keras_rmsprop)


def optimizer(recipe: Recipe):
    return OPTIMIZERS.get(recipe.train.opt)(recipe.train)


def keras_rmsprop(params, lr, sqr_mom: float = 0.9, eps: float = 1e-7, wd: float = 0.0):
    """fastai's RMSProp built by hand: fastai's own factory accepts `eps` but never passes it to the optimiser."""
    from fastai.optimizer import Optimizer, average_sqr_grad, rms_prop_step, weight_decay

    return Optimizer(params, [weight_decay, average_sqr_grad, rms_prop_step], lr=lr, mom=0.0, sqr_mom=sqr_mom,
                     eps=eps, wd=wd)


def recipe_callbacks(recipe: Recipe) -> list:
    """Callbacks every Learner of this recipe carries: plain tensors for the model, BatchNorm statistics frozen,
    mixed-sample augmentation, AECNN's auxiliary reconstruction loss."""
    from .callbacks import AuxReconstruction, PlainTensors, bn_callbacks, mix_callback

    cbs = [PlainTensors()] + bn_callbacks(recipe.model.freeze_bn_stats) + mix_callback(recipe.train.mix)
    if get_arch(recipe.model.arch).front_end:
        cbs.append(AuxReconstruction(recipe.train.aux_weight))
    return cbs


def logger_callbacks(recipe: Recipe, run_dir) -> list:
    """train.loggers: csv is history.csv (always written); tensorboard and wandb are fastai's own callbacks."""
    cbs = []
    try:
        if "tensorboard" in recipe.train.loggers:
            from fastai.callback.tensorboard import TensorBoardCallback
            # log_preds would predict the validation split a second time inside every epoch's end
            cbs.append(TensorBoardCallback(log_dir=str(run_dir / "tensorboard"), trace_model=False, log_preds=False))
        if "wandb" in recipe.train.loggers:
            cbs.append(wandb_callback(recipe, run_dir))
    except ImportError as e:
        raise UsageError(f"train.loggers needs an optional package ({e.name}): pip install "
                         f"'medcolor[{'wandb' if 'wandb' in str(e.name) else 'tensorboard'}]'") from None
    return cbs


def wandb_callback(recipe: Recipe, run_dir):
    """fastai's WandbCallback logs into a W&B run that must already exist: medcolor starts one per fit, named for
    the run folder, the recipe as its config, its files in the run folder (WANDB_PROJECT, default medcolor;
    WANDB_MODE=offline keeps it on this machine), and finishes it when the fit ends."""
    from unittest.mock import patch

    import wandb
    from fastai.callback.wandb import WandbCallback

    from ..core.config import to_dict

    class WandbRun(WandbCallback):
        def before_fit(self):
            if wandb.run is not None:  # left open by a fit that failed (fastai skips after_fit then)
                wandb.finish()
            wandb.init(project=os.environ.get("WANDB_PROJECT", "medcolor"), name=Path(run_dir).name,
                       config=to_dict(recipe), dir=str(run_dir))
            # fastai also logs the Learner's own arguments, and its formatting of them fails on every bool and int
            # with today's fastcore (init_args); the recipe logged above is the run's configuration
            with patch.object(self.learn, "gather_args", dict):
                super().before_fit()

        def after_fit(self):
            super().after_fit()
            wandb.finish()
    return WandbRun(log_preds=False)


def build_learner(recipe: Recipe, dls=None):
    """The Learner `run` trains, starting where the recipe says: ImageNet (or a weights file) and the parts of
    other runs named by model.init_from."""
    from ..nets.models import init_sources, load_parts

    dls = dls if dls is not None else build_dls(recipe)
    learn = _learner(recipe, dls, recipe.model)
    for source, parts in init_sources(recipe.model):
        load_parts(learn.model, resolve_init_path(source), parts=parts)
    return learn


def checkpoint_learner(recipe: Recipe, dls=None):
    """The recipe's architecture with no starting weights, for `--resume`, whose weights come from last.pth:
    nothing is downloaded or read from other runs. (Finished runs load for inference through
    `runs.load_model`, from model.json alone.)"""
    from ..core.config import ModelConfig

    dls = dls if dls is not None else build_dls(recipe)
    return _learner(recipe, dls, ModelConfig.of(recipe.model.network))


def inference_learner(spec, bs: int = 64):
    """A Learner for a run's network as its ModelSpec (model.json) describes it, with DataLoaders that only
    preprocess: no data is read, no weights are loaded (runs.load_model loads best.pth)."""
    from fastai.learner import Learner
    from fastai.torch_core import default_device

    from .callbacks import PlainTensors
    from ..core.config import ModelConfig
    from ..data.block import inference_dls
    from ..tasks.losses import loss_for
    from ..nets.models import build_model

    dls = inference_dls(spec, bs, default_device())
    model = build_model(ModelConfig.of(spec.network), n_out=max(1, len(spec.labels)),
                        stats=(spec.input.mean, spec.input.std))
    return Learner(dls, model.eval(), loss_func=loss_for(spec.single_label), cbs=[PlainTensors()])


def _learner(recipe: Recipe, dls, model_cfg):
    from fastai.learner import Learner
    from ..nets.models import build_model
    from ..nets.modes import apply_mode, splitter_for

    n_out, loss, metrics = task_of(recipe).head(recipe, dls)
    model = build_model(model_cfg, n_out=n_out, stats=(recipe.data.mean, recipe.data.std))
    m = model_cfg
    learn = Learner(dls, model, loss_func=loss, opt_func=optimizer(recipe), splitter=splitter_for(m.mode, m.train_stem),
                    train_bn=m.train_bn, wd=recipe.train.wd, metrics=metrics, cbs=recipe_callbacks(recipe),
                    model_dir=tempfile.gettempdir())  # lr_find's temporary weights: no stray models/ folder
    apply_mode(learn, m.mode, m.train_stem, body_frozen=recipe.train.freeze_epochs > 0)
    speed_up(learn, recipe.train)
    return learn


def learning_rates(learn, recipe: Recipe):
    """What fit_one_cycle gets: train.max_lr, or with train.lr_mult one rate per parameter group (the body's
    max_lr / lr_mult; fastai takes a list wherever it takes a slice)."""
    from ..nets.modes import group_lrs

    t, m = recipe.train, recipe.model
    if t.lr_mult == 1:
        return t.max_lr
    return group_lrs(learn.model, m.mode, m.train_stem, t.max_lr, t.lr_mult)


def schedule_callback(t, lr):
    """train.schedule other than one-cycle: fastai's ReduceLROnPlateau on valid_loss, or MedMNIST+'s cosine."""
    if t.schedule == "plateau":
        from fastai.callback.tracker import ReduceLROnPlateau

        return ReduceLROnPlateau(monitor="valid_loss", factor=1 / t.plateau_factor, patience=t.plateau_patience,
                                 min_lr=t.min_lr)
    from fastai.callback.schedule import ParamScheduler

    return ParamScheduler({"lr": epoch_cosine(lr, t.total_epochs)})


def epoch_cosine(lr, n_epoch: int):
    """MedMNIST+'s schedule: timm's CosineLRScheduler(t_initial=epochs) stepped after each epoch, no warm-up, down to
    0 - epoch e trains at the rate of step max(e - 1, 0). fastai's SchedCos anneals every batch instead, and its
    fit_flat_cos restarts at epoch 0 on resume."""
    import math

    import numpy as np

    peak = np.array(lr, dtype=float)

    def at(pos: float):
        step = max(min(int(pos * n_epoch + 1e-9), n_epoch - 1) - 1, 0)
        return (peak * 0.5 * (1 + math.cos(math.pi * step / n_epoch))).tolist()  # a float, or one per group
    return at


def fit_callbacks(recipe: Recipe) -> list:
    """What fitting itself needs beyond the schedule: train.freeze_epochs - the body, frozen when the Learner is
    built, trains from that epoch on (the schedule runs freeze_epochs + epochs, as fastai's fine_tune); model.head
    knn - the support set instead of training."""
    from .callbacks import FitKnn, UnfreezeBody

    return ([UnfreezeBody(recipe.train.freeze_epochs)] if recipe.train.freeze_epochs else []) + \
        ([FitKnn()] if recipe.model.head == "knn" else [])


def frozen_as_at(learn, recipe: Recipe, epoch: int) -> None:
    """The freezing a run had when `epoch` began, for resuming (before the optimiser state is loaded): the body is
    unfrozen once epoch freeze_epochs has begun (UnfreezeBody unfreezes it at that epoch itself)."""
    if recipe.train.freeze_epochs and epoch > recipe.train.freeze_epochs:
        learn.unfreeze()


def speed_up(learn, t) -> None:
    """channels_last, mixed precision on a GPU (fastai's callbacks) and torch.compile, as train.* asks."""
    if t.fp16 and t.bf16:
        raise UsageError("train.fp16 and train.bf16 both ask for mixed precision; choose one")
    amp = (t.fp16 or t.bf16) and torch.cuda.is_available()
    mode = "bf16" if t.bf16 else "fp16"
    if t.channels_last:  # +12-31 % images/s on this 2-core CPU (benchmarks/bench.py)
        learn.to_channelslast(use_amp=amp, amp_mode=mode)
    elif amp:
        learn.to_bf16() if t.bf16 else learn.to_fp16()
    if t.compile:
        learn.model.compile()  # in place: the parameters and state_dict keys stay those of the plain model


def resolve_init_path(init_from: str):
    """A run folder (its best.pth) or a checkpoint file; `recipe:NAME` is resolved by `run` (see chains.py)."""
    from pathlib import Path

    from ..core.runfolder import best_weights

    if init_from.startswith("recipe:"):
        raise UsageError(f"model.init_from={init_from} names a recipe: use `medcolor run recipe`, which finds or "
                         f"trains that run, or give its run folder")
    path = Path(init_from).expanduser()
    path = best_weights(path) if path.is_dir() else path
    if not path.is_file():
        raise UsageError(f"model.init_from {init_from} has no best.pth; give a finished run folder or a .pth file")
    return path


def check_forward(learn) -> None:
    """One tiny forward pass before a run folder exists: size errors surface as bad input, not a broken run."""
    xb, _ = learn.dls.one_batch()
    learn.model.eval()
    with torch.no_grad():
        learn.model(xb[:2])


# ---- several processes ------------------------------------------------------------------------------------

def rank() -> int:
    from fastai.torch_core import rank_distrib
    return rank_distrib()


def world_size() -> int:
    from fastai.torch_core import num_distrib
    return num_distrib()


@contextlib.contextmanager
def distributed(learn):
    """fastai's distrib_ctx (accelerate's Accelerator + DDP) when started by `accelerate launch` or `torchrun`."""
    if world_size() < 2:
        yield
        return
    import fastai.distributed as fd  # adds Learner.distrib_ctx

    cuda = torch.cuda.is_available()
    original = fd.DistributedDL._broadcast
    if not cuda:  # fastai broadcasts its shuffle order as a CUDA tensor (NCCL only); gloo on CPU takes CPU ones
        fd.DistributedDL._broadcast = _cpu_broadcast
    try:
        with learn.distrib_ctx(sync_bn=cuda, **({} if cuda else {"cpu": True})):  # SyncBatchNorm needs CUDA
            yield
    finally:
        fd.DistributedDL._broadcast = original


def _cpu_broadcast(self, t, rank):
    t = torch.LongTensor(t)
    torch.distributed.broadcast(t, rank)
    return t.tolist()


@contextlib.contextmanager
def this_process_only():
    """Evaluation after distributed training is rank 0's alone: fastai must not gather predictions across ranks."""
    if world_size() < 2:
        yield
        return
    saved = os.environ.get("WORLD_SIZE")
    os.environ["WORLD_SIZE"] = "1"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("WORLD_SIZE", None)
        else:
            os.environ["WORLD_SIZE"] = saved


def weights_fingerprint(model) -> str:
    """sha1 of every parameter and buffer: equal on all ranks when they trained one model."""
    import hashlib
    h = hashlib.sha1()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
