"""Runs as experiments and as models: the environment a run records, finding a finished run that matches a recipe
(chains, sweeps), where a run's weights came from, and a finished run back as a model for inference. The files
themselves belong to `runfolder`."""
from __future__ import annotations

import os
import platform
import shutil
import time
from dataclasses import replace
from pathlib import Path

from ..core.config import Recipe, WeightsSource, to_dict
from ..core.errors import UsageError
from ..core.runfolder import (InputSpec, ModelSpec, finished_runs, format_version, is_ensemble_dir, is_run_dir, member_dirs,
                        predicted_labels, read_ensemble, read_model_spec, saved_recipe)


def environment() -> dict:
    import fastai
    import timm
    import torch

    from ..core._resources import medcolor_version

    return {"medcolor": medcolor_version(), "python": platform.python_version(), "torch": torch.__version__,
            "fastai": fastai.__version__, "timm": timm.__version__, "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
            "started": time.strftime("%Y-%m-%dT%H:%M:%S")}


def check_free_space(runs_dir: Path, model) -> None:
    """Room for best.pth + last.pth (weights and optimiser state) and their temporary copies, before anything
    is written: a full disk fails here with the numbers, not in the middle of a checkpoint."""
    need = 6 * sum(p.numel() * p.element_size() for p in model.parameters()) + (64 << 20)
    probe = Path(runs_dir)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need:
        raise UsageError(f"not enough free space for checkpoints in {runs_dir}: {free / 2**20:.0f} MiB free, about "
                         f"{need / 2**20:.0f} MiB needed; free some space or pass --runs-dir elsewhere")


# ---- finished runs as experiments ------------------------------------------------------------------------------

def lookup(tree: dict, dotted: str):
    """A dotted key of a recipe as a mapping (`to_dict` of a typed recipe: every field, today's default where an
    older main did not write it); None for a key that is not a field."""
    for part in dotted.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def has_values(folder: Path, wanted: dict) -> bool:
    """Whether the folder's saved recipe is readable and has every dotted key = value of `wanted`."""
    saved = readable_recipe(folder)
    tree = to_dict(saved) if saved is not None else None
    return tree is not None and all(lookup(tree, key) == value for key, value in wanted.items())


def matching_run(runs_dir: Path, recipe: str, wanted: dict) -> Path | None:
    """The newest finished run of `recipe` whose saved recipe has every dotted key = value of `wanted`."""
    return next((run for run in finished_runs(runs_dir, recipe) if has_values(run, wanted)), None)


def readable_recipe(run: Path) -> Recipe | None:
    """A searched run's saved recipe, or None (with a warning) for a damaged one: one bad folder among many must
    not stop a sweep, chain or cross-validation from finding the others."""
    from ..core.io import warn

    try:
        return saved_recipe_of(run)
    except UsageError as e:
        warn(f"skipped {run}: {e}")
        return None


def starting_point(start: WeightsSource) -> str:
    """Where a run's weights came from, in words that are equal for every seed of one experiment:
    'imagenet:tv_in1k + chexpert-deconv-mode1[colorizer]' (a run folder is named by its recipe)."""
    weights = str(start.weights or "")
    if start.pretrained:
        base = "imagenet" + (f":{start.pretrained_tag}" if start.pretrained_tag else "")
    elif weights:
        base = f"weights:{weights.removeprefix('package:') if weights.startswith('package:') else Path(weights).name}"
    else:
        base = "random"
    sources = start.init_from or []
    sources = [sources] if isinstance(sources, str) else sources
    parts = start.init_parts or []
    per_source = parts if parts and isinstance(parts[0], list) else [parts] * len(sources)
    return " + ".join([base] + [f"{_source_name(src)}[{','.join(p)}]" for src, p in zip(sources, per_source)])


def _source_name(source: str) -> str:
    """recipe:NAME -> NAME; a run folder or its best.pth -> the recipe name in its recipe.yaml; else the file name."""
    if source.startswith("recipe:"):
        return source[len("recipe:"):]
    path = Path(source)
    try:
        return saved_recipe_of(path if path.is_dir() else path.parent).name
    except (OSError, KeyError, UsageError):
        return path.name


def read_recipe(run_dir: Path) -> Recipe:
    """The run's recipe.yaml as a Recipe; one written by medcolor has every section. An ensemble's is its first
    member's, without the member's fold: its data (the test split every member was scored on)."""

    if is_ensemble_dir(run_dir):
        recipe = read_recipe(member_dirs(run_dir)[0])
        return replace(recipe, data=replace(recipe.data, fold=0))
    return saved_recipe_of(run_dir)


def saved_recipe_of(run_dir: Path) -> Recipe:
    """The one typed reader of a folder's own recipe.yaml: validated, with today's defaults for what older mains
    did not write, and older formats' meanings translated."""
    from .recipes import recipe_from_dict

    saved = saved_recipe(run_dir)
    model = saved["model"] if isinstance(saved["model"], dict) else {}
    if model.get("freeze_bn_stats") is True and format_version(run_dir) < 3:
        model["freeze_bn_stats"] = None  # before format 3, true meant what null means now: frozen parts only
    return recipe_from_dict(saved)


# ---- runs as models --------------------------------------------------------------------------------------------

def spec_for(recipe: Recipe, labels: list[str], single_label: bool) -> ModelSpec:
    """A new run's model.json: the network without its starting weights (best.pth holds them) and the validation
    preprocessing."""
    from ..data.block import input_stats
    from ..data.items import split_fits

    fit = split_fits(recipe.data, recipe.train.image_size)[1]
    mean, std = input_stats(recipe.data)
    return ModelSpec(task=recipe.task, labels=list(labels), single_label=bool(single_label),
                     network=recipe.model.network, input=InputSpec(fit.size, fit.squish, fit.crop, mean, std,
                                                                   fit.channels, recipe.data.pad_to))


def model_spec(run_dir: Path) -> ModelSpec:
    """model.json; for a version-1 folder the same facts from recipe.yaml (network, preprocessing) and the header
    of predictions.csv (labels in output order). Never reads the training data."""
    spec = read_model_spec(run_dir)
    if spec is not None:
        return spec
    from ..tasks.interface import task_of

    recipe = read_recipe(run_dir)
    labels = predicted_labels(run_dir) if task_of(recipe).predicts_labels else []
    if labels is None:
        raise UsageError(f"{run_dir} has neither model.json nor predictions.csv, so the order of its labels is "
                         f"unknown; it is not a finished run")
    return spec_for(recipe, labels, single_label=recipe.data.reader == "folder")  # only folder data is single-label


def load_model(run_dir: str | Path, bs: int = 64):
    """(ModelSpec, fastai Learner with the run's best weights) for inference: built from the run folder alone,
    with DataLoaders that preprocess given images as validation did (`learn.dls.test_dl(rows)`). An ensemble
    folder gives one network averaging its members' calibrated probabilities."""
    from .learner import inference_learner
    from ..nets.models import load_weights
    from ..core.runfolder import best_weights

    run_dir = Path(run_dir)
    if is_ensemble_dir(run_dir):
        return load_ensemble(run_dir, bs)
    if not is_run_dir(run_dir):
        raise UsageError(f"{run_dir} is not a run folder with recipe.yaml and best.pth, nor an ensemble folder")
    spec = model_spec(run_dir)
    learn = inference_learner(spec, bs)
    load_weights(learn.model, best_weights(run_dir))
    learn.path = run_dir
    return spec, learn


def require_classifier(spec: ModelSpec, run_dir, command: str) -> None:
    from ..tasks.interface import TASKS

    if not TASKS[spec.task].predicts_labels:
        raise UsageError(f"{run_dir} is a {spec.task} run; {command} is for classifiers (its PSNR / SSIM are in "
                         f"metrics.json and predictions.csv)")


# ---- ensembles as models ---------------------------------------------------------------------------------------

def ensemble_spec(specs: list[ModelSpec], names: list) -> ModelSpec:
    """The ModelSpec of an ensemble: its members' task, labels and preprocessing, which must agree (one line
    naming the first difference), and the members' networks."""
    first = specs[0]
    for name, spec in zip(names[1:], specs[1:]):
        for field, what in (("task", "task"), ("labels", "labels"), ("single_label", "single- or multi-label"),
                            ("input", "preprocessing")):
            if getattr(spec, field) != getattr(first, field):
                raise UsageError(f"an ensemble needs members of the same task, labels and preprocessing: {name} has "
                                 f"{what} {getattr(spec, field)} where {names[0]} has {getattr(first, field)}")
    return replace(first, network=None, members=tuple(s.network for s in specs))


def load_ensemble(folder: Path, bs: int = 64):
    """(ModelSpec, Learner) of an ensemble folder: every member loaded from its run folder (checked against the
    checksums the ensemble recorded) and temperature-scaled by its own calibration.json, then averaged."""
    from fastai.learner import Learner

    from .callbacks import PlainTensors
    from ..tasks.losses import loss_for
    from ..nets.models import Calibrated, MeanOfMembers
    from ..core.runfolder import read_calibration

    dirs = member_dirs(folder)
    loaded = [load_model(d, bs) for d in dirs]
    spec = ensemble_spec([s for s, _ in loaded], [str(d) for d in dirs])
    require_classifier(spec, folder, "an ensemble")
    nets = []
    for d, (_, learn) in zip(dirs, loaded):
        cal = read_calibration(d)
        nets.append(Calibrated(learn.model.eval(), spec.single_label,
                               [cal["temperature"][lab] for lab in spec.labels] if cal else None))
    learn = Learner(loaded[0][1].dls, MeanOfMembers(nets, spec.single_label).eval(),
                    loss_func=loss_for(spec.single_label), cbs=[PlainTensors()])
    learn.path = Path(folder)
    return spec, learn


def model_title(folder: Path) -> str:
    """What a model folder is, for titles: the run's title, or 'ensemble of 5 folds of demo: ..., seed 0'."""
    from ..core.archs import run_title

    title = run_title(read_recipe(folder))
    if not is_ensemble_dir(folder):
        return title
    e = read_ensemble(folder)
    kind = e.get("kind", "runs")
    return f"ensemble of {len(e['members'])} {kind} of " + (title if kind == "folds" else title.rsplit(", seed", 1)[0])
