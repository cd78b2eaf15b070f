"""The two tasks behind one interface. A recipe's `task` picks one; everything that differs between classifying
and reconstructing (data, head, metrics, what picks the best checkpoint, what a finished run writes) lives here."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from . import classification
from . import reconstruction
from ..core.config import Recipe
from ..core.archs import ARCHS
from ..core.registry import Registry


@dataclass(frozen=True)
class Task:
    name: str
    monitor: str                      # the validation score that picks best.pth by default (higher is better)
    metrics: tuple[str, ...]          # what `metrics:` in a recipe may list
    build_dls: Callable               # (recipe, num_workers, device) -> (DataLoaders, Table)
    head: Callable                    # (recipe, dls) -> (n_out, loss, fastai metrics)
    finalize: Callable                # (learn, recipe, run_dir, table, valid_preds) -> scores; writes results
    summary_line: Callable            # result -> "mean AUC 0.71" / "PSNR 30.1 dB, SSIM 0.95"
    mid_epoch_scores: Optional[Callable] = None  # learn -> {monitor: value, "valid_loss": value}, for
    # train.eval_every_iters
    predicts_labels: bool = False     # `medcolor predict` / `interpret` make sense
    class_weighting: Callable = lambda recipe, learn: {}  # (recipe, learn) -> what metrics.json says of class
    # imbalance (train.sampler, the loss's class weights)


TASKS: Registry[Task] = Registry("task")
for _task in (
    Task("classification", "mean_auc", classification.METRICS, classification.build_dls,
                           classification.head, classification.finalize, classification.summary_line,
                           classification.mid_epoch_scores, predicts_labels=True,
                           class_weighting=classification.class_weighting),
    Task("reconstruction", "ssim", reconstruction.METRICS, reconstruction.build_dls,
                           reconstruction.head, reconstruction.finalize, reconstruction.summary_line)):
    TASKS.register(_task.name, _task)


def task_of(recipe: Recipe) -> Task:
    return TASKS[recipe.task]


def monitor_of(recipe: Recipe) -> str:
    """What picks best.pth and drives early stopping: train.monitor, or the task's validation score."""
    return recipe.train.monitor or task_of(recipe).monitor


def lower_is_better(monitor: str) -> bool:
    return "loss" in monitor


def check_recipe(recipe: Recipe) -> list[str]:
    """What this task needs of a recipe: an architecture made for it, a known colorizer, metrics it computes
    (including the one that picks the best checkpoint)."""
    from ..nets.colorizers import list_colorizers
    from ..core.errors import closest

    task, m, problems = task_of(recipe), recipe.model, []
    if m.arch in ARCHS and ARCHS[m.arch].task != task.name:
        fits = [a for a, spec in ARCHS.items() if spec.task == task.name]
        problems.append(f"model.arch {m.arch!r} does not fit task {task.name}; use {', '.join(fits)}")
    if ARCHS.find(m.arch) and ARCHS[m.arch].colorizer and m.colorizer.lower() not in list_colorizers():
        problems.append(f"model.colorizer {m.colorizer!r} is unknown{closest(m.colorizer.lower(), list_colorizers())}")
    unknown = [name for name in recipe.metrics if name not in task.metrics]
    if unknown:
        problems.append(f"metrics {unknown} are not computed for {task.name}; choose from {', '.join(task.metrics)}")
    if recipe.train.monitor not in (None, "valid_loss", task.monitor):
        problems.append(f"train.monitor must be valid_loss or {task.monitor} (the {task.name} score), got "
                        f"{recipe.train.monitor!r}")
    if not task.predicts_labels and (recipe.train.pos_weight or recipe.train.sampler != "shuffle"):
        problems.append(f"train.pos_weight and train.sampler weigh classes; task {task.name} has none")
    if recipe.metrics and task.monitor.replace("mean_", "") not in recipe.metrics:
        problems.append(f"metrics must include {task.monitor.replace('mean_', '')!r}: it picks the best checkpoint")
    return problems
