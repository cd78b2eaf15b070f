"""Run folders (SPEC 7): runs/<recipe>/<YYYYmmdd-HHMMSS>-<backbone>-s<seed>[-k]/, written atomically, never overwritten."""
from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

from .errors import RunError, UsageError


def new_run_dir(runs_dir: Path, recipe: str, backbone: str, seed: int, suffix: str = "") -> Path:
    """A fresh run folder with an empty plots/ inside."""
    parent = Path(runs_dir) / recipe
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create runs folder {parent}: {e.strerror}; pass --runs-dir to a writable place") from None
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{backbone.replace('/', '_')}-s{seed}{suffix}"
    try:
        path = new_subdir(parent, stem)
    except OSError as e:
        raise UsageError(f"cannot create a run folder in {parent}: {e.strerror}; pass --runs-dir to a writable "
                         f"place") from None
    (path / "plots").mkdir()
    return path


def new_subdir(run_dir: Path, name: str) -> Path:
    """run_dir/name, or name-2, name-3 ... when it exists (mkdir is atomic, so two runs started in the same
    second get their own folders, and files of a finished run are never overwritten)."""
    for k in range(1, 1000):
        path = Path(run_dir) / (name if k == 1 else f"{name}-{k}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RunError(f"too many {name} folders in {run_dir}")


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write to a temporary file in the same folder, fsync, then rename: readers never see half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; run folders are shared with colleagues
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_torch_save(obj, path: Path) -> None:
    import io
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write(path, buf.getvalue())


def write_json(path: Path, obj) -> None:
    atomic_write(path, json.dumps(obj, indent=2) + "\n")


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


def finished_runs(runs_dir: Path, recipe: str) -> list[Path]:
    """Run folders of `recipe` whose metrics.json says they finished, newest first."""
    parent = Path(runs_dir) / recipe
    if not parent.is_dir():
        return []
    done = [p for p in parent.iterdir() if (p / "metrics.json").is_file() and (p / "best.pth").is_file()]
    return sorted(done, key=lambda p: p.name, reverse=True)


def starting_point(model: dict) -> str:
    """Where a run's weights came from, in words that are equal for every seed of one experiment:
    'imagenet:tv_in1k + chexpert-deconv-mode1[colorizer]' (a run folder is named by its recipe)."""
    base = ("imagenet" + (f":{model['pretrained_tag']}" if model.get("pretrained_tag") else "")
            if model.get("pretrained") else f"file:{Path(model['weights']).name}" if model.get("weights") else "random")
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
    folder = path if path.is_dir() else path.parent
    try:
        import yaml
        return yaml.safe_load((folder / "recipe.yaml").read_text())["name"]
    except (OSError, KeyError, TypeError, ValueError):
        return path.name
