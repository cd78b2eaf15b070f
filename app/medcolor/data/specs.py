"""Data specs: `data_specs/<name>.yaml` gives the defaults of a dataset format; a recipe or the command
line overrides them; the result is a validated `DataConfig`."""
from __future__ import annotations

from pathlib import Path

from .._resources import shipped_yaml
from ..config import DataConfig, apply_overrides, from_dict
from ..errors import UsageError, closest
from ..io import read_yaml


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
    merged = {**spec_defaults(name), **section, "spec": name}
    merged["subset"] = {**spec_defaults(name).get("subset", {}), **section.get("subset", {})}
    return from_dict(DataConfig, merged, "data")


def load_data_config(spec: str, overrides=(), root: str | None = None, csv: str | None = None) -> DataConfig:
    """What `medcolor data ...` uses: a spec name plus `key=value` overrides (keys relative to `data.`)."""
    section: dict = {"spec": spec}
    if root:
        section["root"] = root
    if csv:
        section["csv"] = csv
    overrides = [o[len("data."):] if o.startswith("data.") else o for o in overrides]
    section = apply_overrides(section, overrides, schema=DataConfig)
    return resolve_data(section)
