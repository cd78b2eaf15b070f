"""Files shipped with the package: recipes/, data_specs/ (mapped from the repository root) and samples/."""
from __future__ import annotations

from importlib import resources
from pathlib import Path


def shipped_dir(package: str) -> Path:
    """'recipes', 'data_specs' or 'samples' as a real directory (editable install or wheel)."""
    if package == "samples":
        return Path(__file__).parent / "samples"
    return Path(str(resources.files({"recipes": "medcolor._recipe_files", "data_specs": "medcolor._spec_files"}[package])))


def resolve_package_path(value: str) -> Path:
    """`package:samples/x` -> the shipped folder; anything else is a user path."""
    if value.startswith("package:"):
        rel = value[len("package:"):]
        return Path(__file__).parent / rel
    return Path(value).expanduser()
