"""`medcolor data cache`: pre-resized gray PNGs so epochs do not decode full-size files.

The cache lives in $MEDCOLOR_CACHE_DIR (default ~/.cache/medcolor)/<spec>-<hash of root>/<size>/ and is
used automatically by the DataLoaders when it holds every image at a size >= train.image_size.
"""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
from PIL import Image

from ..config import DataConfig
from .images import open_gray, short_side_size
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
    im.save(tmp, format="PNG")
    os.replace(tmp, dst)


def build_cache(cfg: DataConfig, paths: list[str], size: int, workers: int | None = None) -> dict:
    base = cache_base(cfg)
    todo = [p for p in paths if not os.path.exists(cached_path(p, base, size))]
    with ThreadPoolExecutor(workers or (os.cpu_count() or 1)) as pool:
        list(pool.map(lambda p: _resize_one(p, cached_path(p, base, size), size), todo, chunksize=32))
    manifest = {"size": size, "n_images": len(paths), "root": str(data_root(cfg).resolve())}
    (base / str(size) / MANIFEST).write_text(json.dumps(manifest))
    return {"cache_dir": str(base / str(size)), "n_images": len(paths), "written": len(todo)}


def use_cache(cfg: DataConfig, df: pd.DataFrame, image_size: int) -> tuple[pd.DataFrame, bool]:
    """Swap paths for cached copies when a complete cache of a large-enough size exists."""
    base = cache_base(cfg)
    sizes = sorted(int(p.parent.name) for p in base.glob(f"*/{MANIFEST}")) if base.is_dir() else []
    for size in (s for s in sizes if s >= image_size):
        cached = df["path"].map(lambda p: cached_path(p, base, size))
        if all(os.path.exists(p) for p in cached):
            return df.assign(path=cached), True
    return df, False
