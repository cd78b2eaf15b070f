"""Run folders: runs/<recipe>/<YYYYmmdd-HHMMSS>-<backbone>-s<seed>[-k]/, made before training, written atomically,
never overwritten. The one definition of a finished run and of "a finished run that matches", the one reader of
checkpoints, and `load_run` (a finished run back as a Learner)."""
from __future__ import annotations

import os
import platform
import shutil
import time
from pathlib import Path

from .config import Recipe
from .errors import UsageError
from .io import claim_new, load_tensors, read_yaml


def new_run_dir(runs_dir: Path, recipe: str, backbone: str, seed: int, suffix: str = "") -> Path:
    """A fresh run folder with an empty plots/ inside."""
    parent = Path(runs_dir) / recipe
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{backbone.replace('/', '_')}-s{seed}{suffix}"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        path = claim_new(parent / stem, is_dir=True)
    except OSError as e:
        raise UsageError(f"cannot create a run folder in {parent}: {e.strerror}; pass --runs-dir to a writable "
                         f"place") from None
    (path / "plots").mkdir()
    return path


def environment() -> dict:
    import fastai
    import timm
    import torch

    from . import __version__
    return {"medcolor": __version__, "python": platform.python_version(), "torch": torch.__version__,
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


# ---- finished runs -------------------------------------------------------------------------------------------

def is_finished(run_dir: Path) -> bool:
    """A run that wrote its best checkpoint and a metrics.json saying it finished."""
    import json

    run_dir = Path(run_dir)
    try:
        return (run_dir / "best.pth").is_file() and json.loads((run_dir / "metrics.json").read_text())["finished"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


def saved_recipe(run_dir: Path) -> dict:
    """The resolved recipe a run folder keeps (recipe.yaml), as a plain mapping."""
    return read_yaml(Path(run_dir) / "recipe.yaml", "recipe")


def finished_runs(runs_dir: Path, recipe: str) -> list[Path]:
    """Finished run folders of `recipe`, newest first."""
    parent = Path(runs_dir) / recipe
    if not parent.is_dir():
        return []
    return sorted((p for p in parent.iterdir() if is_finished(p)), key=lambda p: p.name, reverse=True)


def lookup(tree: dict, dotted: str):
    for part in dotted.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def matching_run(runs_dir: Path, recipe: str, wanted: dict) -> Path | None:
    """The newest finished run of `recipe` whose saved recipe has every dotted key = value of `wanted`."""
    for run in finished_runs(runs_dir, recipe):
        saved = saved_recipe(run)
        if all(lookup(saved, key) == value for key, value in wanted.items()):
            return run
    return None


def read_predictions(run_dir: Path):
    """(labels, predictions.csv) of a finished classification run: path, split, group, <label>, p_<label>."""
    import pandas as pd

    run_dir = Path(run_dir)
    if not is_finished(run_dir):
        raise UsageError(f"{run_dir} is not a finished run folder (no best.pth / finished metrics.json)")
    frame = pd.read_csv(run_dir / "predictions.csv", keep_default_na=False, na_values=[""])
    labels = [c[2:] for c in frame.columns if c.startswith("p_")]
    if not labels:
        raise UsageError(f"{run_dir} holds no label probabilities (a reconstruction run?); compare needs classifiers")
    return labels, frame


def starting_point(model: dict) -> str:
    """Where a run's weights came from, in words that are equal for every seed of one experiment:
    'imagenet:tv_in1k + chexpert-deconv-mode1[colorizer]' (a run folder is named by its recipe)."""
    weights = str(model.get("weights") or "")
    if model.get("pretrained"):
        base = "imagenet" + (f":{model['pretrained_tag']}" if model.get("pretrained_tag") else "")
    elif weights:
        base = f"weights:{weights.removeprefix('package:') if weights.startswith('package:') else Path(weights).name}"
    else:
        base = "random"
    sources = model.get("init_from") or []
    sources = [sources] if isinstance(sources, str) else sources
    parts = model.get("init_parts") or []
    per_source = parts if parts and isinstance(parts[0], list) else [parts] * len(sources)
    return " + ".join([base] + [f"{_source_name(src)}[{','.join(p)}]" for src, p in zip(sources, per_source)])


def _source_name(source: str) -> str:
    """recipe:NAME -> NAME; a run folder or its best.pth -> the recipe name in its recipe.yaml; else the file name."""
    if source.startswith("recipe:"):
        return source[len("recipe:"):]
    path = Path(source)
    try:
        return saved_recipe(path if path.is_dir() else path.parent)["name"]
    except (OSError, KeyError, UsageError):
        return path.name


# ---- reading runs back ---------------------------------------------------------------------------------------

def load_checkpoint(path: Path) -> dict:
    return load_tensors(path, "checkpoint")


def read_recipe(run_dir: Path) -> Recipe:
    from .recipes import recipe_from_dict

    return recipe_from_dict(saved_recipe(run_dir))


def load_run(run_dir: str | Path):
    """(recipe, Learner with the run's best weights) for a finished run folder: evaluate, interpret, predict."""
    from .learner import checkpoint_learner
    from .models import load_weights

    run_dir = Path(run_dir)
    if not (run_dir / "recipe.yaml").is_file() or not (run_dir / "best.pth").is_file():
        raise UsageError(f"{run_dir} is not a run folder with recipe.yaml and best.pth")
    recipe = read_recipe(run_dir)
    learn = checkpoint_learner(recipe)
    load_weights(learn.model, run_dir / "best.pth")
    learn.path = run_dir
    return recipe, learn
