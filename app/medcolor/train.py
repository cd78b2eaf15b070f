"""Recipe -> DataLoaders -> Learner -> fit_one_cycle -> run folder. The `run` and `lr-find` commands and the
Python API (`build_dls`, `build_learner`) share these builders, so a notebook gets exactly what `run` trains."""
from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from .config import Recipe
from .errors import RunError, UsageError
from .recipes import recipe_to_yaml


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def auto_workers(setting) -> int:
    if setting is not None:
        return setting
    cores = os.cpu_count() or 1
    return 0 if cores <= 2 else min(8, cores - 1)


def build_dls(recipe: Recipe):
    from fastai.torch_core import default_device, set_seed
    from .data.block import build_dls_from_config
    from .reconstruction import build_recon_dls

    set_seed(recipe.train.seed, reproducible=True)
    workers, device = auto_workers(recipe.train.num_workers), default_device()
    if recipe.task == "reconstruction":
        return build_recon_dls(recipe, workers, device)
    return build_dls_from_config(recipe.data, recipe.train.image_size, recipe.train.bs, workers, device)


def monitor(recipe: Recipe) -> str:
    """What picks the best checkpoint (higher is better): mean AUC, or SSIM for reconstruction."""
    return "ssim" if recipe.task == "reconstruction" else "mean_auc"


def task_parts(recipe: Recipe, dls):
    """(n_out, loss, metrics) of the recipe's task."""
    from . import losses, reconstruction
    from .metrics import auc_metrics

    if recipe.task == "reconstruction":
        return 1, reconstruction.loss_for(recipe.train.loss), reconstruction.recon_metrics()
    single = dls.table.single_label
    return len(dls.vocab), losses.loss_for(single), auc_metrics(list(dls.vocab), single)


def logger_callbacks(recipe: Recipe, run_dir: Path) -> list:
    """train.loggers: csv is history.csv (always written); tensorboard and wandb are fastai's own callbacks."""
    cbs = []
    try:
        if "tensorboard" in recipe.train.loggers:
            from fastai.callback.tensorboard import TensorBoardCallback
            cbs.append(TensorBoardCallback(log_dir=str(run_dir / "tensorboard"), trace_model=False))
        if "wandb" in recipe.train.loggers:
            from fastai.callback.wandb import WandbCallback
            cbs.append(WandbCallback(log_preds=False))
    except ImportError as e:
        raise UsageError(f"train.loggers needs an optional package ({e.name}): pip install "
                         f"'medcolor[{'wandb' if 'wandb' in str(e.name) else 'tensorboard'}]'") from None
    return cbs


def extra_callbacks(recipe: Recipe) -> list:
    from .callbacks import AuxReconstruction, mix_callback
    from .modes import bn_callbacks

    cbs = bn_callbacks(recipe.model.freeze_bn_stats) + mix_callback(recipe.train.mix)
    if recipe.model.arch == "aecnn":
        cbs.append(AuxReconstruction(recipe.train.aux_weight))
    return cbs


def optimizer(recipe: Recipe):
    from functools import partial
    from fastai.optimizer import SGD, Adam

    t = recipe.train
    # Adam as PyTorch's defaults (betas 0.9 / 0.999, eps 1e-8; fastai's are 0.99 / 1e-5), as the AECNN source used
    # it; RMSprop as Keras' (rho 0.9, eps 1e-7; fastai's sqr_mom is 0.99), as the IXI autoencoder source used it.
    return {"sgd": partial(SGD, mom=t.mom), "adam": partial(Adam, mom=0.9, sqr_mom=0.999, eps=1e-8),
            "rmsprop": keras_rmsprop}[t.opt]


def keras_rmsprop(params, lr, sqr_mom: float = 0.9, eps: float = 1e-7, wd: float = 0.0):
    """fastai's RMSProp built by hand: fastai's own factory accepts `eps` but never passes it to the optimiser."""
    from fastai.optimizer import Optimizer, average_sqr_grad, rms_prop_step, weight_decay

    return Optimizer(params, [weight_decay, average_sqr_grad, rms_prop_step], lr=lr, mom=0.0, sqr_mom=sqr_mom,
                     eps=eps, wd=wd)


def build_learner(recipe: Recipe, dls=None, fresh: bool = True):
    """The fastai Learner `run` trains: model, mode splitter + freezing, loss, AUC metrics, BN callbacks.
    fresh=False builds the bare architecture for weights that come from a checkpoint (no download, no init_from)."""
    from fastai.learner import Learner
    from .models import build_model, init_sources, load_parts
    from .modes import apply_mode, splitter_for

    dls = dls if dls is not None else build_dls(recipe)
    m = recipe.model
    n_out, loss, metrics = task_parts(recipe, dls)
    model = build_model(m if fresh else replace(m, pretrained=False, weights=None), n_out=n_out)
    for source, parts in (init_sources(m) if fresh else []):
        load_parts(model, resolve_init_path(source), parts=parts)
    learn = Learner(dls, model, loss_func=loss, opt_func=optimizer(recipe), splitter=splitter_for(m.mode),
                    train_bn=False, wd=recipe.train.wd, metrics=metrics, cbs=extra_callbacks(recipe))
    apply_mode(learn, m.mode)
    amp = recipe.train.fp16 and torch.cuda.is_available()
    if recipe.train.channels_last:  # +12-31 % images/s on this 2-core CPU (benchmarks/bench.py)
        learn.to_channelslast(use_amp=amp)
    elif amp:
        learn.to_fp16()
    return learn


def resolve_init_path(init_from: str) -> Path:
    """A run folder (its best.pth) or a checkpoint file; `recipe:NAME` is resolved by `run` (see chains.py)."""
    if init_from.startswith("recipe:"):
        raise UsageError(f"model.init_from={init_from} names a recipe: use `medcolor run recipe`, which finds or "
                         f"trains that run, or give its run folder")
    path = Path(init_from).expanduser()
    path = path / "best.pth" if path.is_dir() else path
    if not path.is_file():
        raise UsageError(f"model.init_from {init_from} has no best.pth; give a finished run folder or a .pth file")
    return path


def check_forward(learn) -> None:
    """One tiny forward pass before a run folder exists: size errors surface as bad input, not a broken run."""
    xb, _ = learn.dls.one_batch()
    learn.model.eval()
    with torch.no_grad():
        learn.model(xb[:2])


def _callbacks(learn, recipe: Recipe, run_dir: Path, quiet: bool, state: dict):
    from .callbacks import RunState, valid_score
    from .metrics import _mean_auc

    every = recipe.train.eval_every_iters if recipe.task == "classification" else 0
    evaluate = valid_score(_mean_auc, learn.loss_func.activation) if every else None
    return [RunState(run_dir, monitor=monitor(recipe), eval_every_iters=every, evaluate=evaluate,
                     log=log if quiet else None, **state)] + logger_callbacks(recipe, run_dir)


def rank() -> int:
    from fastai.torch_core import rank_distrib
    return rank_distrib()


def _world() -> int:
    from fastai.torch_core import num_distrib
    return num_distrib()


def distributed(learn):
    """fastai's distrib_ctx (accelerate's Accelerator + DDP) when started by `accelerate launch` or `torchrun`."""
    import contextlib

    if _world() < 2:
        return contextlib.nullcontext()
    import fastai.distributed as fd  # adds Learner.distrib_ctx

    cuda = torch.cuda.is_available()
    if not cuda:
        fd.DistributedDL._broadcast = _cpu_broadcast
    return learn.distrib_ctx(sync_bn=cuda, **({} if cuda else {"cpu": True}))  # SyncBatchNorm needs CUDA


def _cpu_broadcast(self, t, rank):
    """fastai's DistributedDL broadcasts its shuffle order as a CUDA tensor (NCCL only); gloo on CPU takes CPU ones."""
    t = torch.LongTensor(t)
    torch.distributed.broadcast(t, rank)
    return t.tolist()


def weights_fingerprint(model) -> str:
    """sha1 of every parameter and buffer: equal on all ranks when they trained one model."""
    import hashlib
    h = hashlib.sha1()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def fit(learn, recipe: Recipe, run_dir: Path | None, quiet: bool, state: dict | None = None) -> None:
    """fit_one_cycle (or fit + ReduceLROnPlateau); only rank 0 of a distributed run writes the run folder."""
    from fastai.callback.progress import ProgressCallback
    from .callbacks import StopOnNaN

    state = state or {}
    learn.path, t = run_dir or Path("."), recipe.train
    if quiet or run_dir is None:
        learn.remove_cb(ProgressCallback)
        learn.logger = lambda *_: None  # RunState logs one line per epoch instead of fastai's raw lists
    cbs = (_callbacks(learn, recipe, run_dir, quiet, state) if run_dir else []) + [StopOnNaN()]
    start = state.get("start_epoch", 0)
    if t.schedule == "plateau":
        from fastai.callback.tracker import ReduceLROnPlateau

        plateau = ReduceLROnPlateau(monitor="valid_loss", factor=1 / t.plateau_factor, patience=t.plateau_patience,
                                    min_lr=t.min_lr)
        with distributed(learn):
            learn.fit(t.epochs, t.max_lr, wd=t.wd, cbs=cbs + [plateau], start_epoch=start)
    else:
        with distributed(learn):
            learn.fit_one_cycle(t.epochs, t.max_lr, div=t.div, div_final=t.div_final, pct_start=t.pct_start,
                                wd=t.wd, cbs=cbs, start_epoch=start)
    if getattr(learn, "nan_epoch", None) is not None:
        raise RunError(f"the loss became NaN in epoch {learn.nan_epoch} (train.max_lr={t.max_lr}); lower "
                       f"train.max_lr, `medcolor lr-find {recipe.name}` suggests one; the best checkpoint so far "
                       f"is kept")


def write_run_start(run_dir: Path, recipe: Recipe) -> None:
    from .runs import atomic_write, environment, write_json

    atomic_write(run_dir / "recipe.yaml", recipe_to_yaml(recipe))
    write_json(run_dir / "env.json", environment())


def finalize(learn, recipe: Recipe, run_dir: Path, seconds: float) -> dict:
    """Best weights -> scores on the test split (valid when there is none), metrics.json and plots."""
    from .evaluate import eval_split, plot_history
    from .models import load_weights
    from .config import to_dict
    from .runs import starting_point, write_json

    last = load_checkpoint(run_dir / "last.pth")
    if (run_dir / "best.pth").is_file():
        load_weights(learn.model, run_dir / "best.pth")
    split = eval_split(learn.dls.table)
    scores = (finalize_reconstruction if recipe.task == "reconstruction" else finalize_classification)(
        learn, recipe, run_dir, split)
    plot_history(run_dir / "plots" / "loss.png", last["rows"], monitor=monitor(recipe))
    result = {"run_dir": str(run_dir), **scores, "best_epoch": last["best_epoch"],
              f"best_valid_{monitor(recipe)}": last["best"], "split": split, "seconds": round(seconds, 1)}
    table = learn.dls.table.df
    write_json(run_dir / "timing.json", {"seconds": result["seconds"]})
    # metrics.json holds only what the data and seed determine, so equal runs give equal files
    write_json(run_dir / "metrics.json", {**{k: v for k, v in result.items() if k not in ("run_dir", "seconds")},
                                          "recipe": recipe.name, "task": recipe.task,
                                          "backbone": recipe.model.backbone, "colorizer": recipe.model.colorizer,
                                          "mode": recipe.model.mode, "seed": recipe.train.seed,
                                          "start": starting_point(to_dict(recipe.model)),
                                          "subset_fraction": recipe.data.subset.fraction,
                                          "subset_seed": recipe.data.subset.seed,
                                          "n_train": int((table["split"] == "train").sum()), "finished": True,
                                          "history_rows": len(last["rows"])})
    return result


def finalize_reconstruction(learn, recipe: Recipe, run_dir: Path, split: str) -> dict:
    from .reconstruction import evaluate_split

    return evaluate_split(learn, recipe, split, run_dir)


def finalize_classification(learn, recipe: Recipe, run_dir: Path, split: str) -> dict:
    from .evaluate import plot_colorizer, plot_roc, predict_split, predictions_frame, scores, write_csv

    labels = list(learn.dls.vocab)
    probs, targets, rows = predict_split(learn, split)
    write_csv(run_dir / "predictions.csv", predictions_frame(probs, targets, rows, labels))
    plot_roc(run_dir / "plots" / "roc.png", probs, targets, labels, title=f"{recipe.name} ({split})")
    plot_colorizer(run_dir / "plots" / "colorizer.png", learn.model, learn.dls.valid.one_batch()[0])
    return scores(probs, targets, rows, labels, recipe.data.reader)


def check_free_space(runs_dir: Path, model) -> None:
    """Room for best.pth + last.pth (weights and optimiser state) and their temporary copies, before anything
    is written: a full disk fails here with the numbers, not in the middle of a checkpoint."""
    import shutil

    need = 6 * sum(p.numel() * p.element_size() for p in model.parameters()) + (64 << 20)
    probe = Path(runs_dir)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need:
        raise UsageError(f"not enough free space for checkpoints in {runs_dir}: {free / 2**20:.0f} MiB free, about "
                         f"{need / 2**20:.0f} MiB needed; free some space or pass --runs-dir elsewhere")


def train_new(recipe: Recipe, runs_dir: Path, quiet: bool = False) -> dict:
    """A fresh run: everything that can fail on bad input fails before the run folder is made."""
    import shutil
    from .runs import new_run_dir

    start = time.time()
    learn = build_learner(recipe)
    check_forward(learn)
    if rank() > 0:  # a distributed helper process: trains its share, writes nothing
        fit(learn, recipe, None, quiet=True)
        log(f"rank {rank()}: weights {weights_fingerprint(learn.model)}")
        return {"run_dir": None, "rank": rank()}
    logger_callbacks(recipe, Path(runs_dir))  # a missing optional logger package is bad input: fail now
    check_free_space(runs_dir, learn.model)
    run_dir = new_run_dir(runs_dir, recipe.name, recipe.model.backbone, recipe.train.seed)
    log(f"run folder: {run_dir}")
    try:
        write_run_start(run_dir, recipe)
        if recipe.train.lr_find:
            from fastai.torch_core import no_random

            with no_random():  # on a learner of its own, leaving every random state as it was: the run is
                found = find_lr(build_learner(recipe), run_dir)  # the same as without the LR finder
            log(f"lr-find: valley suggestion {found['valley']:.2e} (plots/lr_find.png)")
        fit(learn, recipe, run_dir, quiet)
    except BaseException:
        if not (run_dir / "last.pth").exists():  # nothing to resume: leave no half-written run behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    if _world() > 1:
        log(f"rank 0: weights {weights_fingerprint(learn.model)}")
        # The helpers are done; evaluation is rank 0's alone, so fastai must not gather predictions across ranks.
        os.environ["WORLD_SIZE"] = "1"
    return finalize(learn, recipe, run_dir, time.time() - start)


def resume(run_dir: Path, quiet: bool = False) -> dict:
    """Continue from last.pth: weights, optimiser state, schedule position (epoch) and history."""
    from fastai.torch_core import set_seed
    from .callbacks import load_opt_state
    from .recipes import read_yaml, recipe_from_dict

    run_dir = Path(run_dir)
    if not (run_dir / "last.pth").is_file() or not (run_dir / "recipe.yaml").is_file():
        raise UsageError(f"{run_dir} has no last.pth / recipe.yaml to resume from; give a run folder that "
                         f"finished at least one epoch")
    start = time.time()
    recipe = recipe_from_dict(read_yaml(run_dir / "recipe.yaml"))
    last = load_checkpoint(run_dir / "last.pth")
    learn = build_learner(recipe, fresh=False)  # the weights come from last.pth
    learn.model.load_state_dict(last["model"])
    load_opt_state(learn.opt, last["opt"])
    start_epoch = last["epoch"] + 1
    log(f"resuming {run_dir} at epoch {start_epoch} of {recipe.train.epochs}")
    set_seed(recipe.train.seed + start_epoch, reproducible=True)
    if start_epoch < recipe.train.epochs:
        fit(learn, recipe, run_dir, quiet, state={"rows": last["rows"], "best": last["best"],
                                                  "best_epoch": last["best_epoch"], "start_epoch": start_epoch})
    return finalize(learn, recipe, run_dir, time.time() - start)


def load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for truncated or foreign files
        raise UsageError(f"cannot read checkpoint {path}: {str(e).splitlines()[0][:200]}") from None


def load_run(run_dir: str | Path):
    """(recipe, Learner with the run's best weights) for a finished run folder: evaluate, interpret, predict."""
    from .models import load_weights
    from .recipes import read_yaml, recipe_from_dict

    run_dir = Path(run_dir)
    if not (run_dir / "recipe.yaml").is_file() or not (run_dir / "best.pth").is_file():
        raise UsageError(f"{run_dir} is not a run folder with recipe.yaml and best.pth")
    recipe = recipe_from_dict(read_yaml(run_dir / "recipe.yaml"))
    learn = build_learner(recipe, fresh=False)
    load_weights(learn.model, run_dir / "best.pth")
    learn.path = run_dir
    return recipe, learn


def find_lr(learn, run_dir: Path, num_it: int = 50) -> dict:
    """fastai's LR finder (it restores the weights afterwards); plot in plots/lr_find.png, suggestion in lr_find.json."""
    import tempfile
    import matplotlib.pyplot as plt
    from .evaluate import save_figure
    from .runs import write_json

    learn.path, learn.model_dir = run_dir, tempfile.mkdtemp(prefix="medcolor-lrfind-")  # fastai's temporary save
    with learn.no_bar():
        suggestion = learn.lr_find(num_it=num_it, show_plot=True)
    save_figure(plt.gcf(), run_dir / "plots" / "lr_find.png")
    result = {"run_dir": str(run_dir), "valley": float(suggestion.valley), "num_it": num_it}
    write_json(run_dir / "lr_find.json", result)
    return result


def lr_find(recipe: Recipe, runs_dir: Path, num_it: int = 50) -> dict:
    """`medcolor lr-find`: the LR finder in the recipe's mode, in a run folder of its own."""
    from .runs import new_run_dir

    learn = build_learner(recipe)
    check_forward(learn)
    run_dir = new_run_dir(runs_dir, recipe.name, recipe.model.backbone, recipe.train.seed, suffix="-lrfind")
    write_run_start(run_dir, recipe)
    return find_lr(learn, run_dir, num_it)


def seed_list(recipe: Recipe, seed: int | None, n_seeds: int | None) -> list[int]:
    if seed is not None:
        return [seed]
    if n_seeds:
        return list(recipe.train.seeds[:n_seeds]) if len(recipe.train.seeds) >= n_seeds else list(range(n_seeds))
    return [recipe.train.seed]


def run_recipe(name_or_path: str, overrides=(), seed: int | None = None, n_seeds: int | None = None,
               runs_dir: str | Path = "runs", quiet: bool = False) -> list[dict]:
    """`medcolor run recipe`: one run per seed; a recipe:NAME init_from is found or trained first."""
    from .chains import resolve_chain
    from .recipes import load_recipe

    runs_dir, overrides = Path(runs_dir), list(overrides)
    base = load_recipe(name_or_path, overrides)
    results = []
    for s in seed_list(base, seed, n_seeds):
        seeded = overrides + [f"train.seed={s}"]
        recipe = resolve_chain(load_recipe(name_or_path, seeded), seeded, runs_dir,
                               train_parent=lambda parent: train_new(parent, runs_dir, quiet))
        results.append(train_new(recipe, runs_dir, quiet))
    return results
