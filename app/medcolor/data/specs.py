"""Data specs: `data_specs/<name>.yaml` gives the defaults of a dataset format; a recipe or the command
line overrides them; the result is a validated `DataConfig`."""
from __future__ import annotations

from pathlib import Path

from ..core._resources import shipped_yaml
from ..core.config import DataConfig, apply_overrides, from_dict
from ..core.errors import UsageError, closest
from ..core.io import read_yaml


def spec_files() -> dict[str, Path]:
    return shipped_yaml("data_specs")


def list_specs() -> list[str]:
    return list(spec_files())


def spec_defaults(name: str) -> dict:
    files = spec_files()
    if name not in files:
        raise UsageError(f"unknown data spec {name!r}{closest(name, files)}; known specs: {', '.join(files)}")
    return read_yaml(files[name], "data spec")


def resolve_data(section: dict) -> DataConfig:
    """A recipe's `data:` mapping (spec name + options) on top of the spec's defaults."""
    if not isinstance(section, dict):
        raise UsageError(f"data must be a mapping (spec: ..., root: ..., labels: ...), got a {type(section).__name__}")
    name = section.get("spec", DataConfig.spec)
    if not isinstance(name, str):
        raise UsageError(f"data.spec must be the name of a data spec ({', '.join(list_specs())}), got {name!r}")
    subset = section.get("subset", {})
    if not isinstance(subset, dict):
        raise UsageError(f"data.subset is a mapping: data.subset.fraction=0.1 data.subset.seed=8, got {subset!r}")
    merged = {**spec_defaults(name), **section, "spec": name}
    merged["subset"] = {**spec_defaults(name).get("subset", {}), **subset}
    cfg = from_dict(DataConfig, merged, "data")
    problems = cfg.problems()
    if problems:
        raise UsageError("; ".join(problems))
    return cfg


def load_data_config(spec: str, overrides=(), root: str | None = None, csv: str | None = None) -> DataConfig:
    """What `medcolor data ...` uses: a spec name plus `key=value` overrides (keys relative to `data.`)."""
    section: dict = {"spec": spec}
    if root:
        section["root"] = root
    if csv:
        section["csv"] = csv
    overrides = [o[len("data."):] if o.startswith("data.") else o for o in overrides]
    section = apply_overrides(section, overrides, schema=DataConfig)
    cfg = resolve_data(section)
    problems = unused_fields(cfg, {o.split("=", 1)[0].split(".")[0] for o in overrides} | ({"csv"} if csv else set()))
    if problems:
        raise UsageError("; ".join(problems))
    return cfg


def specs_reading(field_name: str) -> list[str]:
    from .readers import reads

    return [name for name in list_specs() if reads(spec_defaults(name).get("reader", name), field_name)]


def unused_fields(cfg: DataConfig, explicit) -> list[str]:
    """Problems for fields in `explicit` (names set by the user) that cfg's reader does not use."""
    from .readers import reads

    problems = []
    for key in sorted(explicit):
        if not reads(cfg.reader, key):
            users = specs_reading(key)
            problems.append(f"data.{key} is not used by data spec {cfg.spec!r}" +
                            (f" (only by {', '.join(users)})" if users else " (no data spec reads it)"))
    return problems


def explicit_keys(overrides, section: str) -> set[str]:
    """Field names under `section` that `key=value` overrides set (data.body_part=... -> body_part)."""
    keys = set()
    for item in overrides or []:
        path = item.split("=", 1)[0].split(".")
        if len(path) >= 2 and path[0] == section:
            keys.add(path[1])
    return keys
