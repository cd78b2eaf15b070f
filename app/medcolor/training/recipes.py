"""Recipes: one YAML file per named experiment. `resolve_recipe_path` turns "name or path" into a file (the
torchtune way), `load_recipe` applies `key=value` overrides and validates everything into a `Recipe`.
Listing stays light (no torch): `medcolor recipes ls` answers in a fraction of a second."""
from __future__ import annotations

from pathlib import Path

import yaml

from ..core import io
from ..core._resources import resolve_named, shipped_yaml
from ..core.archs import ARCHS, colorizer_archs, gray_replicated, uses_colorizer
from ..core.config import ModelConfig, Recipe, apply_overrides, from_dict, to_dict
from ..core.errors import UsageError, all_problems


def recipe_files() -> dict[str, Path]:
    return shipped_yaml("recipes")


def resolve_recipe_path(name_or_path: str) -> Path:
    return resolve_named("recipes", name_or_path, "recipe",
                         hint="`medcolor recipes ls` lists them, or give a path to a YAML file")


def read_yaml(path: Path) -> dict:
    return io.read_yaml(path, "recipe")


def load_recipe(name_or_path: str, overrides=(), check_unused: bool = True) -> Recipe:
    """The validated recipe; every problem (unknown keys, wrong types, bad values) reported at once.
    `check_unused=False` for overrides medcolor passes on itself (a chain's parent gets its child's)."""
    path = resolve_recipe_path(name_or_path)
    written = read_yaml(path)
    raw = apply_overrides(written, list(overrides), schema=Recipe)
    prefer_timm_weights(raw, overrides)
    raw.setdefault("name", path.stem)
    raw["name"] = name_for_data(raw, written)
    recipe = recipe_from_dict(raw)
    problems = unused_settings(recipe, written, list(overrides)) if check_unused else []
    if problems:
        raise all_problems(problems)
    return recipe


def prefer_timm_weights(raw: dict, overrides) -> None:
    """`model.pretrained=true` on the command line asks for timm's ImageNet weights of the backbone named there:
    it replaces a weights file the recipe names (the demo's and MedMNIST's EfficientNet-Lite0 package), as
    `model.pretrained=true model.backbone=resnet18` would otherwise fail on that file."""
    from ..data.specs import explicit_keys

    model = raw.get("model")
    keys = explicit_keys(overrides, "model")
    if isinstance(model, dict) and "pretrained" in keys and model.get("pretrained") is True and "weights" not in keys:
        model["weights"] = None


def name_for_data(raw: dict, written: dict) -> str:
    """A recipe run on another data spec than its own is another experiment: 'demo@folder-xrays' (the spec and
    the dataset folder's name), so its runs get their own folder and report row instead of mixing with the
    recipe's own runs."""
    own = (written.get("data") or {}).get("spec") if isinstance(written.get("data"), dict) else None
    data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
    spec, name = data.get("spec"), str(raw.get("name", ""))
    if "@" not in name and isinstance(spec, str) and (defaults := medmnist_spec(spec)):  # one file per dataset, size
        return f"{name}@{data.get('name') or defaults.get('name')}-{data.get('size') or defaults.get('size')}"
    if not isinstance(spec, str) or spec == (own or "nih-sample") or "@" in name:
        return name
    root = Path(str(data["root"])).name if data.get("root") else ""
    return f"{name}@{spec}" + (f"-{root}" if root else "")


def medmnist_spec(spec: str) -> dict:
    """The defaults of `spec` when it reads MedMNIST files, else {} (unknown specs are reported later)."""
    from ..data.specs import spec_defaults, spec_files

    defaults = spec_defaults(spec) if spec in spec_files() else {}
    return defaults if defaults.get("reader") == "medmnist" else {}


def unused_settings(recipe: Recipe, written: dict, overrides: list[str]) -> list[str]:
    """Data and model fields set by the user (on the command line, or in the recipe file for the data spec and
    architecture it names itself) that the data spec or architecture in effect does not use."""
    from ..data.specs import explicit_keys, unused_fields
    from ..tasks.interface import TASKS

    def explicit(section: str, switch: str) -> set[str]:
        keys = explicit_keys(overrides, section)
        own = written.get(section) if isinstance(written.get(section), dict) else {}
        return keys | (set(own) if switch not in keys else set())
    problems = unused_fields(recipe.data, explicit("data", "spec"))
    arch, m = ARCHS.find(recipe.model.arch), explicit("model", "arch")
    if arch and not arch.colorizer and "colorizer" in m and not gray_replicated(recipe.model.colorizer):
        problems.append(f"model.colorizer is not used by model.arch {recipe.model.arch!r} (only {colorizer_archs()} "
                        f"has one)")
    if arch and not arch.backbone and "backbone" in m:
        problems.append(f"model.backbone is not used by model.arch {recipe.model.arch!r} (it has its own encoder)")
    if arch and arch.backbone and not TASKS[arch.task].predicts_labels and "backbone" not in m:  # resnet18 default
        problems.append(f"model.arch {recipe.model.arch!r} needs model.backbone, the timm body of its encoder"
                        + (f" (the thesis's: {arch.thesis_body})" if arch.thesis_body else ""))
    return problems


def recipe_from_dict(raw: dict) -> Recipe:
    from ..data.specs import resolve_data

    errors: list[str] = []
    data_section = raw.get("data", {}) or {}
    try:
        data = resolve_data(data_section)
    except UsageError as e:
        errors.append(str(e))
        data = None
    try:
        recipe = from_dict(Recipe, {k: v for k, v in raw.items() if k != "data"})
    except UsageError as e:
        errors.append(str(e))
        recipe = None
    if recipe is not None:
        recipe.data = data or recipe.data
        errors += recipe.problems() + registry_problems(recipe, data is not None)
    if errors:
        raise all_problems(errors)
    return recipe


def registry_problems(r: Recipe, with_data: bool = True) -> list[str]:
    """What the recipe's task and data need of it (each dataclass checks its own values first)."""
    from ..data.medmnist import image_channels
    from ..tasks.interface import check_recipe, task_of

    m, d = r.model, r.data
    problems = check_recipe(r)
    if with_data and image_channels(d) == 3 and uses_colorizer(m.arch) and not gray_replicated(m.colorizer):
        how = "read as RGB (data.as_rgb)" if d.as_rgb else "RGB"
        problems.append(f"{d.name} is {how}: its images go straight to the backbone, so model.colorizer must be "
                        f"none (got {m.colorizer}); colorizers are for gray images")
    if with_data and d.folds and not task_of(r).predicts_labels:
        problems.append(f"data.folds (cross-validation) is for classifiers; task {r.task} has no AUC to pool")
    return problems


def recipe_to_yaml(r: Recipe) -> str:
    return yaml.safe_dump(to_dict(r), sort_keys=False)


RECONSTRUCTION_ONLY = ("crop", "denoise", "vflip")


def shown_recipe(r: Recipe) -> str:
    """`recipes show`: the resolved recipe without the fields its data spec, task and architecture do not use
    (run folders keep the complete recipe.yaml), after a line that says where the starting weights come from."""
    from ..data.readers import reads
    from ..tasks.interface import task_of

    d = to_dict(r)
    d["data"] = {k: v for k, v in d["data"].items() if reads(r.data.reader, k)
                 and not (k in RECONSTRUCTION_ONLY and task_of(r).predicts_labels)}
    arch = ARCHS.find(r.model.arch)
    drop = {"pretrained_tag"} if not r.model.pretrained else set()
    drop |= {"colorizer"} if arch and not arch.colorizer else set()
    drop |= {"init_parts"} if not r.model.init_from else set()
    d["model"] = {k: v for k, v in d["model"].items() if k not in drop}
    rates = ""
    if arch and task_of(r).predicts_labels:
        from ..nets.modes import rate_plan

        rates = "# learning rates (one-cycle peak): " + \
            ", ".join(f"{part} {rate}" for part, rate in rate_plan(r.model, r.train).items()) + "\n"
    return f"# starting weights: {weights_source(r.model)}\n{rates}" + yaml.safe_dump(d, sort_keys=False)


def settings_line(r: Recipe) -> str:
    """A recipe's training protocol in one line (`run sweep --dry-run`): what differs between training schemes."""
    t, d, m = r.train, r.data, r.model
    if m.head == "knn":
        how = f"k-NN vote of {m.knn_k} on the frozen body's features, nothing trained"
    else:
        how = f"mode {m.mode}, {t.opt} max_lr {t.max_lr:g} wd {t.wd:g}, {t.schedule.replace('_', '-')}, " \
              f"{t.total_epochs} epochs" + (f", early stopping {t.early_stop_patience} on {t.monitor or 'the score'}"
                                            if t.early_stop_patience else "") + f", batch {t.bs}"
    data = ("RGB" if d.as_rgb else "gray") + (f", padded to {d.pad_to}" if d.pad_to else "") + \
        ("" if d.augment else ", no augmentation")
    return f"{r.name}: {how}; {data}; {weights_source(m)}"


def weights_source(m: ModelConfig) -> str:
    if m.weights and str(m.weights).startswith("package:"):
        where = f"ImageNet weights from the installed package {m.weights[len('package:'):]} (model.weights)"
    elif m.weights:
        where = f"the weights file {m.weights} (model.weights)"
    elif m.pretrained:
        where = f"ImageNet weights through timm ({m.backbone}{'.' + m.pretrained_tag if m.pretrained_tag else ''})"
    else:
        where = "random (no ImageNet weights)"
    return where + (f", then parts of {m.init_from} (model.init_from)" if m.init_from else "")


def list_recipes() -> list[dict]:
    rows = []
    for name, path in recipe_files().items():
        raw = read_yaml(path)
        model, data = raw.get("model", {}), raw.get("data", {})
        backbone, arch = model.get("backbone", ModelConfig.backbone), model.get("arch", ModelConfig.arch)
        if model.get("pretrained") and model.get("pretrained_tag") and "." not in backbone:
            backbone = f"{backbone}.{model['pretrained_tag']}"  # the ImageNet weights it starts from
        rows.append({"name": name, "task": raw.get("task", Recipe.task), "data": data.get("spec", ""),
                     "backbone": backbone, "mode": model.get("mode", ModelConfig.mode),
                     "colorizer": model.get("colorizer", ModelConfig.colorizer) if uses_colorizer(arch) else arch,
                     "description": raw.get("description", "")})
    return rows


def format_recipe_table(rows: list[dict]) -> str:
    cols = ["name", "task", "data", "backbone", "colorizer", "mode", "description"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols[:-1]}
    lines = ["  ".join(c.ljust(widths.get(c, 0)) for c in cols)]
    lines += ["  ".join(str(r[c]).ljust(widths.get(c, 0)) for c in cols) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def copy_recipe(name_or_path: str, dest: str) -> Path:
    src, out = resolve_recipe_path(name_or_path), Path(dest)
    if out.exists():
        raise UsageError(f"{out} already exists; choose another file name (medcolor never overwrites)")
    if out.suffix not in (".yaml", ".yml"):
        raise UsageError(f"{out} must end in .yaml")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        io.atomic_write(out, copied_text(src.read_text(encoding="utf-8"), src.stem, out))
    except OSError as e:  # a full disk is a failure (exit 1), an unwritable folder bad input (2)
        raise io.write_failure(e) or UsageError(f"cannot write {out}: {e.strerror} ({e.filename or out.parent})") \
            from None
    return out


def copied_text(text: str, source: str, out: Path) -> str:
    """A recipe's text for its copy: the first line's `medcolor run recipe NAME ...` runs the copy, not the source."""
    first, _, rest = text.partition("\n")
    command = f"# medcolor run recipe {source}"
    if first == command or first.startswith(command + " "):
        first = f"# medcolor run recipe {out}{first[len(command):]}\n# copied from recipe {source}"
    return f"{first}\n{rest}"


def validate(name_or_path: str, overrides=()) -> Recipe:
    """load_recipe's checks plus those that need timm (the backbone name and its weight tag)."""
    from ..nets.backbones import check_backbone_name

    r = load_recipe(name_or_path, overrides)
    if ARCHS[r.model.arch].backbone:
        check_backbone_name(r.model.backbone, r.model.pretrained_tag if r.model.pretrained else None)
    return r


# ---- what a recipe will train on, and train ----------------------------------------------------------------------

def recipe_data_summary(recipe: Recipe, split: str = "train") -> dict:
    """`data summary --recipe`: the counts of the recipe's own data section (its valid_pct, labels, subset)."""
    from ..data.summary import summarize

    return {**summarize(recipe.data, split=split), "recipe": recipe.name}


def recipe_model_summary(recipe: Recipe) -> dict:
    """`model summary --recipe`: the recipe's network at its image size, with as many outputs as its data has
    labels (read from the label table), trainable in its mode. Starting weights do not change counts: none load."""

    from ..data.readers import read_table
    from ..nets.summary import summarize_arch, summarize_colornet
    from ..tasks.interface import task_of

    n_out = len(read_table(recipe.data, splits=("train",), allow_unsplit=True).labels) \
        if task_of(recipe).predicts_labels else 1
    m = ModelConfig.of(recipe.model.network)  # nothing downloaded or read from other runs
    if not uses_colorizer(m.arch):
        body = m.backbone if ARCHS[m.arch].backbone else None
        return {**summarize_arch(m.arch, n_out, recipe.train.image_size, body), "recipe": recipe.name}
    return {**summarize_colornet(m, n_out, recipe.train.image_size, recipe.train), "recipe": recipe.name}
