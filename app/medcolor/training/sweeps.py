"""Sweeps: a grid of recipes x backbones x grid values x seeds (`recipes/sweeps/<name>.yaml`).

Jobs are grouped by (backbone, seed, grid point, chain) - a chain being a recipe and those that start from it through
`model.init_from: recipe:NAME` - so a mode-2 recipe lands in the same shard as the mode-1 run it starts from while
independent chains spread over machines; `--shard i/n` takes every n-th group; finished runs are skipped, so a
sweep can be restarted."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

from ..core._resources import resolve_named
from ..core.config import format_override, from_dict, parse_override
from .chains import parent_recipe
from ..core.errors import UsageError
from ..core.io import read_yaml
from .recipes import resolve_recipe_path
from .runs import matching_run


@dataclass
class Sweep:
    name: str = ""
    description: str = ""
    recipes: list[str] = field(default_factory=list)
    backbones: list[str] = field(default_factory=lambda: ["resnet18"])
    seeds: list[int] = field(default_factory=lambda: [0])
    seed_keys: list[str] = field(default_factory=lambda: ["train.seed"])
    grid: dict[str, list] | list[dict[str, list]] = field(default_factory=dict)  # a list: the union of its grids;
    # a grid's `recipes: [...]` limits it to some of the recipes
    overrides: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Job:
    recipe: str
    overrides: tuple[str, ...]
    group: tuple

    @property
    def label(self) -> str:
        return f"{self.recipe} {' '.join(self.overrides)}"


def load_sweep(name_or_path: str) -> Sweep:
    path = resolve_named("recipes/sweeps", name_or_path, "sweep")
    raw = read_yaml(path, "sweep")
    raw.setdefault("name", path.stem)
    sweep = from_dict(Sweep, raw, "sweep")
    if not sweep.recipes:
        raise UsageError(f"sweep {sweep.name} lists no recipes")
    return sweep


def grid_points(grid, recipes) -> list[tuple[tuple[str, ...], list[str]]]:
    """(key=value overrides, recipes) of every grid point; a list of grids is their union, in order, and a grid's
    `recipes: [...]` limits it to those of the sweep's recipes (the k-NN protocol has no colorizer rows)."""
    points = []
    for g in grid if isinstance(grid, list) else [grid]:
        if not isinstance(g, dict):
            raise UsageError(f"a sweep grid maps keys to lists of values, got {g!r}")
        only = g.get("recipes", recipes)
        unknown = [r for r in only if r not in recipes]
        if unknown:
            raise UsageError(f"a sweep grid names recipes {unknown} that the sweep does not list "
                             f"({', '.join(recipes)})")
        axes = {k: v for k, v in g.items() if k != "recipes"}
        points += [(tuple(format_override(k, v) for k, v in zip(axes, values)), list(only))
                   for values in itertools.product(*axes.values())]
    return points


def expand(sweep: Sweep, extra=()) -> list[Job]:
    jobs = []
    roots = chain_roots(sweep.recipes)  # each recipe's YAML read once, not once per grid cell
    for backbone, seed, (point, recipes) in itertools.product(sweep.backbones, sweep.seeds,
                                                              grid_points(sweep.grid, sweep.recipes)):
        fixed = [*sweep.overrides, *extra, f"model.backbone={backbone}", *point,
                 *(f"{key}={seed}" for key in sweep.seed_keys)]
        jobs += [Job(r, tuple(fixed), (backbone, seed, point, roots[r])) for r in sweep.recipes if r in recipes]
    return jobs


def recipe_parents(recipe: str) -> list[str]:
    """The recipes that `recipe`'s `model.init_from` names (`recipe:NAME`, alone or in a list)."""
    init = (read_yaml(resolve_recipe_path(recipe), "recipe").get("model") or {}).get("init_from") or []
    return [name for ref in (init if isinstance(init, list) else [init]) if (name := parent_recipe(ref))]


def chain_roots(recipes) -> dict[str, str]:
    """Each recipe's chain: recipes joined through `model.init_from` (parents, their parents, and a recipe with
    two parents joining both chains) share one name, a recipe the chain starts from. Hand-written union-find."""
    root: dict[str, str] = {}

    def find(r: str) -> str:
        while root.setdefault(r, r) != r:
            r = root[r]
        return r
    todo, seen = list(recipes), set()
    while todo:
        r = todo.pop()
        if r not in seen:
            seen.add(r)
            for parent in recipe_parents(r):
                root[find(r)] = find(parent)  # a cycle finds one root on both sides and changes nothing
                todo.append(parent)
    return {r: find(r) for r in recipes}


def parse_shard(text: str | None) -> tuple[int, int]:
    if not text:
        return 1, 1
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard must look like i/n (e.g. 2/4), got {text!r}") from None
    if not 1 <= i <= n:
        raise UsageError(f"--shard {text}: i must be between 1 and n")
    return i, n


def shard(jobs: list[Job], i: int, n: int) -> list[Job]:
    groups = list(dict.fromkeys(j.group for j in jobs))
    mine = {g for k, g in enumerate(groups) if k % n == i - 1}
    return [j for j in jobs if j.group in mine]


def plan(name_or_path: str, extra=(), shard_text: str | None = None) -> list[Job]:
    """This machine's jobs of the sweep, in order."""
    return shard(expand(load_sweep(name_or_path), extra), *parse_shard(shard_text))


def protocols(name_or_path: str, extra=()) -> list[str]:
    """Each of the sweep's recipes in one line (its training protocol), with the sweep's overrides applied."""
    from .recipes import load_recipe, settings_line

    sweep = load_sweep(name_or_path)
    return [settings_line(load_recipe(r, [*sweep.overrides, *extra])) for r in sweep.recipes]


def done_run(job: Job, runs_dir: Path) -> Path | None:
    """The finished run of the job's recipe whose saved recipe.yaml has every value the job sets, if any."""
    from .recipes import load_recipe

    wanted = {"data.folds": 0, **{".".join(path): value for path, value in map(parse_override, job.overrides)}}
    return matching_run(runs_dir, load_recipe(job.recipe, list(job.overrides), check_unused=False).name, wanted)
