"""`medcolor data cache`: pre-resized gray PNGs so epochs do not decode full-size files.

The cache lives in $MEDCOLOR_CACHE_DIR (default ~/.cache/medcolor)/<spec>-<hash of root>/<size>/ and is
used automatically by the DataLoaders when it holds every image at a size >= train.image_size.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

import pandas as pd
from PIL import Image

from ..core.config import DataConfig
from ..core.errors import MedcolorError, UsageError
from ..core.io import atomic_write, removed_on_failure, write_error
from .images import open_gray, short_side_size
from .memory import stream
from .readers import data_root

MANIFEST = "manifest.json"


def cache_base(cfg: DataConfig) -> Path:
    home = Path(os.environ.get("MEDCOLOR_CACHE_DIR", Path.home() / ".cache" / "medcolor"))
    key = hashlib.sha1(str(data_root(cfg).resolve()).encode()).hexdigest()[:12]
    return home / f"{cfg.spec}-{key}"


def cached_path(path: str, base: Path, size: int) -> str:
    return str(base / str(size) / path.lstrip("/")) + ".png"


def _resize_one(src: str, dst: str, size: int) -> None:
    im = open_gray(src)
    if min(im.size) > size:  # shorter side -> size; random square crops stay possible
        im = im.resize(short_side_size(im.size, size), Image.BILINEAR)
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    tmp = dst + ".tmp"
    try:
        im.save(tmp, format="PNG")
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def build_cache(cfg: DataConfig, paths: list[str], size: int, workers: int | None = None) -> dict:
    """Resized copies of `paths`, streamed (memory does not grow with the number of images); a full or read-only
    disk stops it with one line and no half-written file."""
    base = cache_base(cfg)
    folder = base / str(size)
    todo = [p for p in paths if not os.path.exists(cached_path(p, base, size))]
    new = next((p for p in (base.parent, base, folder) if not p.exists()), None)  # what this call creates
    unwritten = {}  # path -> the write failure as raised (stream passes errors on as text)

    def write(path):
        try:
            _write_or_raise(path, cached_path(path, base, size), size)
        except MedcolorError as e:
            unwritten[path] = e
            raise
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with removed_on_failure(new) if new else contextlib.nullcontext():  # a cache started earlier keeps its
            for path, (_, error) in zip(todo, stream(write, todo, workers)):  # finished images (a later call resumes)
                if error:
                    raise unwritten.get(path) or UsageError(f"cannot cache {path}: {error}")
            atomic_write(folder / MANIFEST, json.dumps({"size": size, "n_images": len(paths),
                                                        "root": str(data_root(cfg).resolve())}))
    except OSError as e:
        raise unwritable(folder, e) from None
    return {"cache_dir": str(base / str(size)), "n_images": len(paths), "written": len(todo)}


def _write_or_raise(src: str, dst: str, size: int) -> None:
    """_resize_one, with a failure to write (not to decode) passed on as an OSError for build_cache to name."""
    try:
        _resize_one(src, dst, size)
    except OSError as e:
        if e.errno is not None:  # writing failed (ENOSPC, EROFS, EACCES); decoding errors carry no errno
            raise unwritable(Path(dst).parent, e) from None
        raise


def unwritable(folder: Path, e: OSError) -> MedcolorError:
    return write_error(e, f"cannot write the cache in {folder}: {e.strerror}; free some space or set "
                          f"MEDCOLOR_CACHE_DIR to a writable folder")


def use_cache(cfg: DataConfig, df: pd.DataFrame, image_size: int) -> tuple[pd.DataFrame, bool]:
    """Swap paths for cached copies when a complete cache of a large-enough size exists."""
    base = cache_base(cfg)
    sizes = sorted(int(p.parent.name) for p in base.glob(f"*/{MANIFEST}")) if base.is_dir() else []
    for size in (s for s in sizes if s >= image_size):
        cached = df["path"].map(lambda p: cached_path(p, base, size))
        if all(os.path.exists(p) for p in cached):
            return df.assign(path=cached), True
    return df, False
