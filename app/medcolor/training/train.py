"""The training script: `medcolor run recipe` (seeds, chains), `--resume`, `run sweep` and `lr-find`.
A leaf: only the command line imports it (library code builds Learners with medcolor.training.learner)."""
from __future__ import annotations

import contextlib
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..core.archs import run_title, uses_colorizer
from ..core.config import Recipe
from ..core.errors import Interrupted, RunError, UsageError, stop_signal
from ..core.io import info
from ..core import runfolder
from .learner import (build_data, build_learner, check_forward, checkpoint_learner, distributed, fit_callbacks,
                      frozen_as_at, learning_rates, logger_callbacks, rank, schedule_callback, this_process_only,
                      weights_fingerprint, world_size)
from .recipes import load_recipe, recipe_to_yaml
from ..core.runfolder import is_finished, new_run_dir
from .runs import check_free_space, environment, read_recipe, spec_for, starting_point
from ..tasks.interface import task_of


def run_recipe(name_or_path: str, overrides=(), seed: int | None = None, n_seeds: int | None = None,
               runs_dir: str | Path = "runs", quiet: bool = False, existing=None, wait: bool = True,
               callbacks=(), into: Path | None = None) -> list[dict]:
    """`medcolor run recipe`: one run per seed; a recipe:NAME init_from is found or trained first. With `existing`
    (sweeps), every run is claimed in the runs folder first, so concurrent sweeps never train one job twice; without
    `wait` a run another sweep holds is left to it ({"deferred": True}). `callbacks`: extra fastai callbacks for the
    recipe's own runs, not for the runs they start from (a tuning trial's pruning). `into`: the folder the recipe's
    own runs are made in (a cross-validation folder's folds), else runs_dir/<recipe>/."""
    from .chains import resolve_chain

    runs_dir, overrides = Path(runs_dir), list(overrides)
    base = load_recipe(name_or_path, overrides)
    shared = existing is not None

    def train(recipe, find=lambda: None, wait=True, cbs=(), folder=None):
        return train_shared(recipe, runs_dir, quiet, find, wait, cbs) if shared else \
            train_new(recipe, runs_dir, quiet, cbs, folder)
    results = []
    for s in seed_list(base, seed, n_seeds):
        seeded = overrides + [f"train.seed={s}"]
        recipe = resolve_chain(load_recipe(name_or_path, seeded), seeded, runs_dir, train_parent=train)
        results.append(train(recipe, existing or (lambda: None), wait, callbacks, into))
    return results


@contextlib.contextmanager
def heartbeat(claim: Path):
    """Touch a held claim every CLAIM_HEARTBEAT seconds (sweeps on other hosts see it is alive); release it after."""
    import os
    import threading

    stop = threading.Event()

    def beat():
        while not stop.wait(runfolder.CLAIM_HEARTBEAT):
            try:
                os.utime(claim)
            except OSError:
                return
    threading.Thread(target=beat, daemon=True).start()
    try:
        yield
    finally:
        stop.set()
        claim.unlink(missing_ok=True)


def train_shared(recipe: Recipe, runs_dir: Path, quiet: bool, existing, wait: bool = True, callbacks=()) -> dict:
    """Train `recipe` unless another process does: the run is claimed in the runs folder (runfolder.claim); a run
    claimed by a live sweep is waited for and reused (`existing()` finds it once finished), or left to it."""
    said = False
    while True:
        run = existing()
        if run is not None:
            return reused(run)
        claim = runfolder.claim(runs_dir, recipe_to_yaml(recipe))
        if claim is not None:
            with heartbeat(claim):
                run = existing()  # another sweep may have finished it and let go between the look and the claim
                return reused(run) if run is not None else train_new(recipe, runs_dir, quiet, callbacks)
        if not wait:
            return {"run_dir": None, "deferred": True}
        if not said:
            info(f"another sweep is training {recipe.name} (seed {recipe.train.seed}): waiting for it")
            said = True
        time.sleep(1.0)


def reused(run: Path) -> dict:
    return {**runfolder.read_metrics(run), "run_dir": str(run), "reused": True}


def seed_list(recipe: Recipe, seed: int | None, n_seeds: int | None) -> list[int]:
    if n_seeds is not None and n_seeds < 1:
        raise UsageError(f"--seeds must be at least 1, got {n_seeds}")
    if seed is not None:
        return [seed]
    if n_seeds:
        return list(recipe.train.seeds[:n_seeds]) if len(recipe.train.seeds) >= n_seeds else list(range(n_seeds))
    return [recipe.train.seed]


def train_new(recipe: Recipe, runs_dir: Path, quiet: bool = False, callbacks=(), into: Path | None = None) -> dict:
    """A fresh run (in runs_dir/<recipe>/, or in `into`): everything that can fail on bad input fails before the run
    folder is made."""
    if recipe.data.folds and not recipe.data.fold:
        raise UsageError(f"data.folds={recipe.data.folds} without data.fold: run every fold with `medcolor run recipe "
                         f"{recipe.name} --folds {recipe.data.folds}`, or one with data.fold=1..{recipe.data.folds}")
    start = time.time()
    dls, table = build_data(recipe)
    learn = build_learner(recipe, dls)
    check_forward(learn)
    if rank() > 0:  # a distributed helper process: trains its share, writes nothing
        fit(learn, recipe, None, quiet=True)
        info(f"rank {rank()}: weights {weights_fingerprint(learn.model)}")
        return {"run_dir": None, "rank": rank()}
    logger_callbacks(recipe, Path(runs_dir))  # a missing optional logger package is bad input: fail now
    check_free_space(runs_dir, learn.model)
    for stale in runfolder.stale_runs(runs_dir, recipe.name):
        if (stale / runfolder.RECIPE).is_file():
            info(f"note: {stale} was stopped before it finished; `medcolor run recipe {recipe.name} --resume "
                 f"{stale}` continues it, or remove it")
        else:  # stopped before it held anything to continue from
            shutil.rmtree(stale, ignore_errors=True)
            info(f"note: removed {stale}, a run folder stopped before its recipe was written")
    run_dir = new_run_dir(runs_dir, recipe.name, recipe.model.backbone, recipe.train.seed,
                          runfolder.fold_suffix(recipe.data.fold, recipe.data.folds), parent=into)
    with stopping_cleanly(run_dir, recipe):
        write_run_start(run_dir, recipe, learn.dls)
        info(f"run folder: {run_dir}")
        return train_in(run_dir, recipe, learn, table, start, quiet, callbacks)


def train_in(run_dir: Path, recipe: Recipe, learn, table, start: float, quiet: bool, callbacks=()) -> dict:
    """The LR finder when asked, fit, and the end of the run, in a run folder that holds its start files."""
    if recipe.train.lr_find:
        from fastai.torch_core import no_random

        with no_random():  # on a learner of its own, leaving every random state as it was: the run is
            found = find_lr(build_learner(recipe), recipe, run_dir)  # the same as without the LR finder
        info(f"lr-find: valley suggestion {found['valley']:.2e} (plots/lr_find.png)")
    fitted = fit(learn, recipe, run_dir, quiet, callbacks=callbacks)
    if world_size() > 1:
        info(f"rank 0: weights {weights_fingerprint(learn.model)}")
    with this_process_only():  # the helpers are done; evaluation is rank 0's alone
        return finalize(learn, recipe, run_dir, table, time.time() - start, fitted)


@contextlib.contextmanager
def stopping_cleanly(run_dir: Path, recipe: Recipe):
    """Whatever stops a run - Ctrl-C, SIGTERM, an error - leaves either a resumable folder (one epoch done) or
    none, and says which in one line."""
    try:
        yield
    except KeyboardInterrupt as e:
        raise interrupted(run_dir, recipe, e) from None
    except BaseException:
        if not runfolder.has_last(run_dir):  # nothing to resume: leave no half-written run behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def interrupted(run_dir: Path, recipe: Recipe, signal: KeyboardInterrupt) -> Interrupted:
    """Ctrl-C / SIGTERM: keep a folder that holds a finished epoch (resumable), remove one that does not."""
    name, code = stop_signal(signal)
    again = f"`medcolor run recipe {recipe.name} --resume {run_dir}`"
    if runfolder.has_last(run_dir):
        epoch = runfolder.read_last(run_dir)["epoch"]
        if epoch + 1 >= recipe.train.total_epochs:
            return Interrupted(f"{name}: stopped while evaluating the best model after the last epoch; {run_dir} is "
                               f"kept - finish it with {again}", code)
        return Interrupted(f"{name}: stopped after epoch {epoch} of {recipe.train.total_epochs}; {run_dir} is kept - "
                           f"continue with {again}", code)
    shutil.rmtree(run_dir, ignore_errors=True)
    return Interrupted(f"{name} before the first epoch finished: {run_dir} removed (nothing to resume)", code)


def resume(run_dir: Path, quiet: bool = False, overrides=()) -> dict:
    """Continue from last.pth: weights, optimiser state, schedule position (epoch) and history. A folder stopped
    before its first epoch ended (kill -9, out of memory) starts again in place. A finished run is never written."""
    from fastai.torch_core import set_seed
    from .callbacks import load_opt_state

    run_dir = Path(run_dir)
    if overrides:
        raise UsageError(f"--resume continues {run_dir} exactly as its recipe.yaml says; {', '.join(overrides)} "
                         f"would not be applied - start a new run to change settings")
    if is_finished(run_dir):
        return finished_result(run_dir)
    if not (run_dir / runfolder.RECIPE).is_file():
        raise UsageError(f"{run_dir} has no recipe.yaml to resume from; give a run folder")
    if (run_dir / runfolder.METRICS).exists():
        raise UsageError(f"{run_dir} has a metrics.json that cannot be read as a finished run's; it finished once, "
                         f"and --resume never writes to a finished run (restore metrics.json, or start a new run)")
    start = time.time()
    recipe = read_recipe(run_dir)
    dls, table = build_data(recipe)
    if not runfolder.has_last(run_dir):
        info(f"{run_dir} stopped before its first epoch ended: starting it again in place")
        runfolder.write_owner(run_dir)
        with stopping_cleanly(run_dir, recipe):
            return train_in(run_dir, recipe, build_learner(recipe, dls), table, start, quiet)
    last = runfolder.read_last(run_dir)
    learn = checkpoint_learner(recipe, dls)
    try:
        learn.model.load_state_dict(last["model"])
    except RuntimeError:
        raise UsageError(f"{run_dir}/last.pth does not fit the network its recipe.yaml describes (was recipe.yaml "
                         f"edited?); resume needs both as the run wrote them") from None
    start_epoch = last["epoch"] + 1
    frozen_as_at(learn, recipe, start_epoch)
    load_opt_state(learn.opt, last["opt"])
    info(f"resuming {run_dir} at epoch {start_epoch} of {recipe.train.total_epochs}")
    set_seed(recipe.train.seed + start_epoch, reproducible=True)
    runfolder.write_owner(run_dir)
    with stopping_cleanly(run_dir, recipe):
        fitted = Fitted(stopped=early_stop_of(recipe, last))  # it had stopped early: only the end of the run is left
        if start_epoch < recipe.train.total_epochs and not fitted.stopped:
            fitted = fit(learn, recipe, run_dir, quiet, state={"rows": last["rows"], "best": last["best"],
                                                               "best_epoch": last["best_epoch"],
                                                               "start_epoch": start_epoch})
        return finalize(learn, recipe, run_dir, table, time.time() - start, fitted)


def finished_result(run_dir: Path) -> dict:
    """A finished run's result, read back and said in one line; nothing in the folder is touched."""
    metrics = runfolder.read_metrics(run_dir)
    seconds = runfolder.read_seconds(run_dir) or float("nan")  # timing.json is informative only
    try:
        summary = task_of(read_recipe(run_dir)).summary_line(metrics)
    except (KeyError, TypeError):
        raise UsageError(f"{run_dir}/metrics.json holds no scores; it is not the file the run wrote") from None
    info(f"{run_dir} is finished ({summary}, best epoch {metrics['best_epoch']}); nothing to resume, "
         f"nothing written")
    return {**metrics, "run_dir": str(run_dir), "seconds": seconds, "summary": summary}


@dataclass
class Fitted:
    """What fitting hands to the end of a run: the best epoch's validation (probabilities, targets) when they were
    seen whole, and where and why training stopped before its last epoch."""

    valid_preds: tuple | None = None
    stopped: dict | None = None


def fit(learn, recipe: Recipe, run_dir: Path | None, quiet: bool, state: dict | None = None, callbacks=()) -> Fitted:
    """fit_one_cycle, fit + ReduceLROnPlateau, or fit with MedMNIST+'s per-epoch cosine; only rank 0 of a
    distributed run writes the run folder."""
    from fastai.callback.progress import ProgressCallback
    from .callbacks import BestValidPredictions, StopOnNaN, StopTraining

    learn.path, t = run_dir or Path("."), recipe.train
    if quiet or run_dir is None:
        learn.remove_cb(ProgressCallback)
        learn.logger = lambda *_: None  # RunHistory logs one line per epoch instead of fastai's raw lists
    stop, kept = StopOnNaN(), BestValidPredictions()
    cbs = (run_callbacks(recipe, run_dir, quiet, state or {}) + [kept] + list(callbacks) if run_dir else []) + [stop]
    cbs += fit_callbacks(recipe)
    start, lr = (state or {}).get("start_epoch", 0), learning_rates(learn, recipe)
    with distributed(learn):
        if t.schedule == "one_cycle":
            learn.fit_one_cycle(t.total_epochs, lr, div=t.div, div_final=t.div_final, pct_start=t.pct_start,
                                wd=t.wd, cbs=cbs, start_epoch=start)
        else:
            learn.fit(t.total_epochs, lr, wd=t.wd, cbs=cbs + [schedule_callback(t, lr)], start_epoch=start)
    if stop.nan_epoch is not None:
        advice = f"lower train.max_lr={t.max_lr:g}, `medcolor lr-find {recipe.name}` suggests one" if stop.diverged \
            else "the learning rate is not the cause"
        raise RunError(f"the loss became NaN in epoch {stop.nan_epoch}: {stop.cause}; {advice}; the best checkpoint "
                       f"so far is kept")
    stopped = next((cb.stopped for cb in cbs if isinstance(cb, StopTraining) and cb.stopped), None)
    return Fitted(kept.kept, stopped)


def early_stop_of(recipe: Recipe, last: dict) -> dict | None:
    """{"epoch", "why"} when the checkpoint in last.pth ends a run that early stopping had stopped (it was stopped
    again before it finished), else None."""
    from .callbacks import no_improvement
    from ..tasks.interface import monitor_of

    epoch = last["epoch"]
    why = no_improvement(recipe.train.early_stop_patience, epoch, last["best_epoch"], monitor_of(recipe),
                         last["best"]) if epoch + 1 < recipe.train.total_epochs else None
    return {"epoch": int(epoch), "why": why} if why else None


def run_callbacks(recipe: Recipe, run_dir: Path, quiet: bool, state: dict) -> list:
    """The run folder's bookkeeping (best / last checkpoints, history, mid-epoch evaluation), early stopping and
    the loggers."""
    from .callbacks import EarlyStopping, MidEpochEval, RunHistory, SaveBest, SaveLast
    from ..tasks.interface import monitor_of

    task, start, monitor = task_of(recipe), state.get("start_epoch", 0), monitor_of(recipe)
    cbs = [RunHistory(run_dir, state.get("rows"), start, log=info if quiet else None,
                      shown=("train_loss", "valid_loss", task.monitor)),
           SaveBest(run_dir, monitor, state.get("best"), state.get("best_epoch", -1), start),
           SaveLast(run_dir, start)]
    if recipe.train.eval_every_iters and task.mid_epoch_scores:
        cbs.append(MidEpochEval(run_dir, recipe.train.eval_every_iters, task.mid_epoch_scores, monitor))
    if recipe.train.early_stop_patience:
        cbs.append(EarlyStopping(recipe.train.early_stop_patience, start))
    return cbs + logger_callbacks(recipe, run_dir)


def write_run_start(run_dir: Path, recipe: Recipe, dls) -> None:
    """recipe.yaml, env.json and model.json (the network and preprocessing that inference needs)."""
    spec = spec_for(recipe, list(dls.vocab), dls.valid_ds.single_label) if task_of(recipe).predicts_labels \
        else spec_for(recipe, [], False)
    runfolder.write_start(run_dir, recipe_to_yaml(recipe), environment(), spec)


def finalize(learn, recipe: Recipe, run_dir: Path, table, seconds: float, fitted: Fitted | None = None) -> dict:
    """Best weights -> scores on the test split (valid when there is none), metrics.json and plots."""
    from ..nets.models import load_weights
    from ..core.plots import plot_history
    from ..tasks.interface import monitor_of

    task, monitor, fitted = task_of(recipe), monitor_of(recipe), fitted or Fitted()
    last = runfolder.read_last(run_dir)
    if not runfolder.best_weights(run_dir).is_file():  # never "finished" without a best model to evaluate
        raise RunError(f"no epoch gave a valid validation {monitor} (NaN every epoch), so there is no best "
                       f"model; {run_dir} keeps last.pth and history.csv to inspect")
    load_weights(learn.model, runfolder.best_weights(run_dir))
    split = table.eval_split()
    scores = task.finalize(learn, recipe, run_dir, table, fitted.valid_preds)
    plot_history(runfolder.plot_path(run_dir, runfolder.LOSS_PLOT), last["rows"], monitor=task.monitor, title=run_title(recipe),
                 best_epoch=last["best_epoch"], best_by=monitor, stopped=fitted.stopped)
    result = {"run_dir": str(run_dir), **scores, "best_epoch": last["best_epoch"], "monitor": monitor,
              best_key(monitor): last["best"], "epochs_trained": int(last["epoch"]) + 1,
              "stopped_early": fitted.stopped, "split": split, "seconds": round(seconds, 1)}
    # metrics.json holds only what the data and seed determine, so equal runs give equal files
    metrics = {**{k: v for k, v in result.items() if k not in ("run_dir", "seconds")},
               "recipe": recipe.name, "task": recipe.task, "backbone": recipe.model.backbone,
               "colorizer": recipe.model.colorizer, "mode": recipe.model.mode, "seed": recipe.train.seed,
               "start": starting_point(recipe.model.start), "subset_fraction": recipe.data.subset.fraction,
               "subset_seed": recipe.data.subset.seed, "n_train": int((table.df["split"] == "train").sum()),
               **({"fold": recipe.data.fold, "folds": recipe.data.folds} if recipe.data.folds else {}),
               **task.class_weighting(recipe, learn), "finished": True, "history_rows": len(last["rows"])}
    runfolder.write_final(run_dir, metrics, seconds=result["seconds"])
    write_card(learn, recipe, run_dir, result, table)
    files = sorted(p.name + ("/" if p.is_dir() else "") for p in run_dir.iterdir() if not p.name.startswith("."))
    return {**result, "summary": task.summary_line(result), "files": files}


def best_key(monitor: str) -> str:
    """metrics.json's name for the best monitored validation value: best_valid_mean_auc, best_valid_loss."""
    return f"best_{monitor}" if monitor.startswith("valid_") else f"best_valid_{monitor}"


def write_card(learn, recipe: Recipe, run_dir: Path, result: dict, table) -> None:
    """model_card.md, from the run's files and the model's own parameter counts."""
    from .model_card import render
    from ..nets.modes import trainable_parameters

    m = recipe.model
    ids = trainable_parameters(learn.model, m.mode, m.train_bn, m.train_stem) if uses_colorizer(m.arch) else \
        {id(p) for p in learn.model.parameters() if p.requires_grad}
    params = (sum(p.numel() for p in learn.model.parameters() if id(p) in ids),
              sum(p.numel() for p in learn.model.parameters()))
    sizes = table.df["split"].value_counts().reindex(["train", "valid", "test"]).dropna().astype(int)
    card = render(recipe, result, sizes.to_dict(), list(table.labels), params, runfolder.read_env(run_dir),
                  runfolder.read_calibration(run_dir), starting_point(m.start))
    runfolder.write_card(run_dir, card)


def find_lr(learn, recipe: Recipe, run_dir: Path, num_it: int = 50, progress: bool = False) -> dict:
    """fastai's LR finder (it restores the weights afterwards); plot in plots/lr_find.png, suggestion in lr_find.json.
    `progress`: fastai's progress bar (the command line shows it on a terminal)."""
    from ..core.plots import lr_finder_figure

    learn.path = run_dir  # its temporary weights go to learn.model_dir, the system's temporary folder
    with contextlib.nullcontext() if progress else learn.no_bar():
        suggestion = learn.lr_find(num_it=num_it, show_plot=True)
    lr_finder_figure(runfolder.plot_path(run_dir, runfolder.LR_FIND_PLOT),
                     f"{run_title(recipe)}: fastai's LR finder, {num_it} mini-batches", recipe.train.max_lr)
    result = {"run_dir": str(run_dir), "valley": float(suggestion.valley), "num_it": num_it}
    runfolder.write_lr_find(run_dir, result)
    return result


def lr_find(recipe: Recipe, runs_dir: Path, num_it: int = 50) -> dict:
    """`medcolor lr-find`: the LR finder in the recipe's mode, in a run folder of its own."""
    if num_it < 2:
        raise UsageError(f"--num-it must be at least 2 mini-batches, got {num_it}")
    if recipe.model.head == "knn":
        raise UsageError(f"{recipe.name} votes with a k-NN head: it has no learning rate to find")
    learn = build_learner(recipe)
    check_forward(learn)
    run_dir = new_run_dir(runs_dir, recipe.name, recipe.model.backbone, recipe.train.seed,
                          suffix=runfolder.LR_FIND_SUFFIX)
    info(f"lr-find: {num_it} mini-batches at learning rates from 1e-7 to 10 (fastai's LR finder), then the plot")
    try:
        write_run_start(run_dir, recipe, learn.dls)
        return {**find_lr(learn, recipe, run_dir, num_it, progress=sys.stderr.isatty()),
                "recipe_max_lr": recipe.train.max_lr,
                "recipe": recipe.name}
    except BaseException as e:  # Ctrl-C, SIGTERM or an error: no half-written -lrfind folder
        shutil.rmtree(run_dir, ignore_errors=True)
        if isinstance(e, KeyboardInterrupt):
            name, code = stop_signal(e)
            raise Interrupted(f"{name}: lr-find stopped; {run_dir} removed", code) from None
        raise


def run_sweep(name_or_path: str, extra=(), shard_text: str | None = None, runs_dir="runs", quiet=False,
              dry_run=False) -> list[dict]:
    """`medcolor run sweep`: this shard's jobs, skipping those a finished run already did."""
    from .sweeps import done_run, plan

    runs_dir, results, deferred = Path(runs_dir), {}, []
    jobs = plan(name_or_path, extra, shard_text)
    for job in jobs:  # first the jobs no other sweep holds, then (waiting) those it does
        if done_run(job, runs_dir):
            results[job] = {"job": job.label, "status": "done"}
        elif dry_run:
            results[job] = {"job": job.label, "status": "todo"}
        elif not sweep_job(job, runs_dir, quiet, results, wait=False):
            deferred.append(job)
    for job in deferred:
        sweep_job(job, runs_dir, quiet, results, wait=True)
    return [results[job] for job in jobs]


def sweep_job(job, runs_dir: Path, quiet: bool, results: dict, wait: bool) -> bool:
    """Run one sweep job, sharing the runs folder with other sweeps; False when another sweep holds it."""
    from .sweeps import done_run

    run = run_recipe(job.recipe, list(job.overrides), runs_dir=runs_dir, quiet=quiet,
                     existing=lambda: done_run(job, runs_dir), wait=wait)[0]
    if run.get("deferred"):
        return False
    results[job] = {"job": job.label, "status": "done by another sweep" if run.get("reused") else "ran",
                    "run_dir": run["run_dir"], "score": run.get("mean_auc", run.get("ssim"))}
    return True


def format_lr_find(r: dict) -> str:
    """The suggestion, and what it means next to the recipe's own max_lr."""
    valley, used = r["valley"], r["recipe_max_lr"]
    ratio = used / valley
    relation = f"{ratio:.0f}x the valley" if ratio >= 1.5 else f"1/{1 / ratio:.0f} of the valley" if ratio <= 0.67 \
        else "about the valley"
    return (f"valley suggestion: train.max_lr={valley:.2e}; the recipe uses {used:.2e} ({relation}).\n"
            f"The valley is where the loss still falls steadily, a safe start for fit_one_cycle; its warm-up often "
            f"tolerates a few times more, and recipes tuned by trial (like the thesis's) may sit above it.\n"
            f"Compare: medcolor run recipe {r['recipe']} train.max_lr={valley:.2e}\n"
            f"wrote plots/lr_find.png, lr_find.json, recipe.yaml, env.json, model.json in {r['run_dir']}")
