"""Runs that start from other runs: `model.init_from: recipe:NAME` finds a finished run of NAME with the same
backbone and seed (and data, for a same-dataset chain like mode 1 -> mode 2) or trains it first."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..core.config import Recipe, to_dict
from ..core.errors import UsageError
from ..core.io import info
from ..core.runfolder import best_weights
from .runs import matching_run

# Overrides that belong to the child run only; every other key=value is passed on to the parent run.
CHILD_ONLY = ("model.mode", "model.init_from", "model.init_parts", "name", "description")
SAME_DATA = ("spec", "root", "csv", "labels", "any_finding", "policy", "policy_map", "frontal_only", "subset",
             "body_part", "valid_pct", "split_seed", "folds", "fold", "fold_seed")  # a parent trained on the child's
# validation images (another split or fold) would leak them into the child's choice of its best epoch


def parent_overrides(overrides, recipe: Recipe) -> list[str]:
    kept = [o for o in overrides if not o.split("=", 1)[0].strip().startswith(CHILD_ONLY)]
    return kept + [f"model.backbone={recipe.model.backbone}", f"train.seed={recipe.train.seed}"]


PARENT_MODEL = ("arch", "backbone", "colorizer", "pretrained", "pretrained_tag", "weights")  # what a parent must share


def shared_with_parent(key: str) -> bool:
    """Whether a setting must be the same in the run a chain starts from: the network's identity and, for a
    same-dataset chain, the data (find_parent_run matches them); a tuning study passes only these to the parent."""
    section, _, field = key.partition(".")
    return (section == "model" and field in PARENT_MODEL) or (section == "data" and field.split(".")[0] in SAME_DATA)


def find_parent_run(runs_dir: Path, parent: Recipe, recipe: Recipe, same_data: bool) -> Path | None:
    """A finished run of `parent` (with the child's overrides) with the same model, seed and, for a same-dataset
    chain, the same data."""
    model = to_dict(parent.model)
    wanted = {f"model.{k}": model[k] for k in ("mode", *PARENT_MODEL)}
    wanted["train.seed"] = recipe.train.seed
    if same_data:
        data = to_dict(recipe.data)
        wanted.update({f"data.{k}": data[k] for k in SAME_DATA})
    return matching_run(runs_dir, parent.name, wanted)


def resolve_chain(recipe: Recipe, overrides, runs_dir: Path, train_parent) -> Recipe:
    """`recipe` with every init_from entry pointing at a concrete best.pth; `train_parent(parent, existing)` runs a
    missing one (`existing()` finds it when another process finished it meanwhile)."""
    refs = recipe.model.init_from
    if not refs:
        return recipe
    resolved = [resolve_one(ref, recipe, overrides, runs_dir, train_parent) for ref in
                ([refs] if isinstance(refs, str) else refs)]
    return replace(recipe, model=replace(recipe.model, init_from=resolved[0] if isinstance(refs, str) else resolved))


def parent_recipe(ref) -> str | None:
    """NAME of an init_from entry `recipe:NAME`; None for a run folder or a weights file."""
    ref = str(ref)
    return ref[len("recipe:"):] if ref.startswith("recipe:") else None


def resolve_one(ref: str, recipe: Recipe, overrides, runs_dir: Path, train_parent) -> str:
    name = parent_recipe(ref)
    if name is None:
        return ref
    from .recipes import load_recipe

    parent = load_recipe(name, parent_overrides(overrides, recipe), check_unused=False)
    same_dataset = parent.data.spec == recipe.data.spec
    run = find_parent_run(runs_dir, parent, recipe, same_data=same_dataset)
    if run is None and not same_dataset:
        raise UsageError(f"{recipe.name} starts from a finished {parent.name} run (backbone "
                         f"{recipe.model.backbone}, seed {recipe.train.seed}) in {runs_dir}; run `medcolor run recipe "
                         f"{parent.name} model.backbone={recipe.model.backbone} --seed {recipe.train.seed}` first, "
                         f"or set model.init_from=RUN_DIR")
    if run is None:
        run = Path(train_parent(parent, lambda: find_parent_run(runs_dir, parent, recipe, same_data=True))["run_dir"])
    else:
        info(f"reusing {parent.name} run {run}")
    return str(best_weights(run))
