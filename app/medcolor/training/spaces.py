"""Search spaces for `medcolor tune`: `recipes/spaces/<name>.yaml` (or a path) maps recipe fields to distributions,

    train.max_lr: {log: [1.0e-4, 1.0e-1]}       # log-uniform float
    train.pct_start: {float: [0.1, 0.5]}        # uniform float
    train.epochs: {int: [3, 15]}                # integer, both ends included
    model.colorizer: {choice: [none, conv1x1, coloru]}

validated against the recipe like its own fields: every problem (an unknown field, a bad range, a value the field
does not take, a field the recipe's data spec does not read) in one error. Optuna samples them (`Param.suggest`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core._resources import resolve_named
from ..core.config import Recipe, check_path, format_override
from ..core.errors import UsageError
from ..core.io import read_yaml

KINDS = ("log", "float", "int", "choice")


@dataclass(frozen=True)
class Param:
    key: str        # a dotted recipe field, e.g. train.max_lr
    kind: str       # log, float, int or choice
    values: tuple   # (low, high), or the choices

    def suggest(self, trial):
        """The trial's value, sampled by Optuna under the field's own name."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.key, list(self.values))
        if self.kind == "int":
            return trial.suggest_int(self.key, *self.values)
        return trial.suggest_float(self.key, *self.values, log=self.kind == "log")

    def override(self, value) -> str:
        return format_override(self.key, value)

    def corners(self) -> tuple:
        """The values to validate against the recipe: every choice, or both ends of the range."""
        return self.values


@dataclass(frozen=True)
class Space:
    name: str
    description: str
    params: tuple[Param, ...]

    def as_dict(self) -> dict:
        return {p.key: {p.kind: list(p.values)} for p in self.params}


def space_files() -> dict[str, Path]:
    from ..core._resources import shipped_yaml

    return shipped_yaml("recipes/spaces")


def load_space(name_or_path: str) -> Space:
    """The space's parameters, each checked for form (one kind, a valid range or choice list); `check_space` then
    checks them against a recipe."""
    path = resolve_named("recipes/spaces", name_or_path, "search space",
                         hint=f"shipped: {', '.join(space_files())}, or give a path to a YAML file")
    raw = read_yaml(path, "search space")
    description = raw.pop("description", "")
    params, problems = [], []
    for key, spec in raw.items():
        param = parse_param(str(key), spec, problems)
        if param:
            params.append(param)
    if not raw:
        problems.append(f"search space {path} names no recipe field; e.g. train.max_lr: {{log: [1.0e-4, 1.0e-1]}}")
    if problems:
        raise UsageError(f"search space {path.stem}: " + "; ".join(problems))
    return Space(path.stem, str(description), tuple(params))


def parse_param(key: str, spec, problems: list[str]) -> Param | None:
    try:
        check_path(Recipe, key.split("."), f"{key}: ...")
    except UsageError as e:
        problems.append(str(e).replace(f" in override '{key}: ...'", ""))
        return None
    kinds = list(spec) if isinstance(spec, dict) else []
    if len(kinds) != 1 or kinds[0] not in KINDS:
        problems.append(f"{key} must be one of {{log: [low, high]}}, {{float: [low, high]}}, {{int: [low, high]}} or "
                        f"{{choice: [a, b, ...]}}, got {spec!r}")
        return None
    kind, values = kinds[0], spec[kinds[0]]
    if not isinstance(values, list) or not values:
        problems.append(f"{key}: {kind} needs a non-empty list, got {values!r}")
        return None
    if kind == "choice":
        return Param(key, kind, tuple(values))
    return range_param(key, kind, values, problems)


def range_param(key: str, kind: str, values: list, problems: list[str]) -> Param | None:
    number = int if kind == "int" else (int, float)
    if len(values) != 2 or not all(isinstance(v, number) and not isinstance(v, bool) for v in values):
        what = "two integers" if kind == "int" else "two numbers"
        problems.append(f"{key}: {kind} needs [low, high], {what}, got {values!r}")
        return None
    low, high = values
    if not low < high:
        problems.append(f"{key}: {kind} range [{low}, {high}] needs low < high")
        return None
    if kind == "log" and low <= 0:
        problems.append(f"{key}: a log range must be positive, got [{low}, {high}] (use float: for ranges from 0)")
        return None
    return Param(key, kind, (low, high) if kind == "int" else (float(low), float(high)))


def check_space(space: Space, recipe: str, overrides) -> None:
    """Every value the space can give, set on the recipe as an override would be: all problems in one error."""
    from .recipes import load_recipe

    problems = []
    for param in space.params:
        for value in param.corners():
            try:
                load_recipe(recipe, [*overrides, param.override(value)])
            except UsageError as e:
                problems.append(f"{param.key}={value!r}: {e}")
    if problems:
        raise UsageError(f"search space {space.name} does not fit recipe {recipe}: "
                         + "; ".join(dict.fromkeys(problems)))
