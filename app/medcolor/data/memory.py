"""Holding a dataset's decoded images in RAM: decoded once, in threads, when they fit (data.in_memory).

Every epoch then reads arrays instead of files: on the demo the per-image decode and resize took as long as the
model's step for a few images, and IXI slices were re-read with their whole volume for each slice."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Callable, Iterable

from ..core.config import DataConfig
from ..core.errors import UsageError
from ..core.io import info

RAM_SHARE = 0.25  # data.in_memory: auto holds a dataset when it needs at most this share of the machine's RAM


def total_ram() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def use_memory(cfg: DataConfig, n_bytes: int, what: str) -> bool:
    """Whether to decode `what` into RAM: always, never, or (auto) when it fits in RAM_SHARE of the machine."""
    if cfg.in_memory == "auto" and n_bytes > RAM_SHARE * total_ram():
        info(f"{what} need about {n_bytes / 2**30:.1f} GiB decoded, more than {RAM_SHARE:.0%} of this machine's "
             f"RAM: decoding from disk every epoch (`medcolor data cache` makes that cheaper)")
        return False
    return cfg.in_memory != "never"


def stream(load: Callable, items: Iterable, workers: int | None = None, block: int = 512):
    """(value, error) of `load` for each item, in order, from threads (PIL and zlib release the GIL). Items are
    handed to the threads a block at a time, so what is in flight does not grow with the number of items."""
    def one(item):
        try:
            return load(item), None
        except Exception as e:  # PIL raises many types for broken files; the caller decides what to do
            return None, str(e) if isinstance(e, UsageError) else failure_name(e)  # DICOM explains itself
    items = iter(items)
    with ThreadPoolExecutor(workers or min(8, (os.cpu_count() or 1) * 2)) as pool:
        while chunk := list(islice(items, block)):
            yield from pool.map(one, chunk)


def failure_name(e: Exception) -> str:
    """An exception's type, with the system's reason where it carries one: 'OSError (Too many open files)'. PIL's
    own messages repeat the path, so they are left out."""
    return f"{type(e).__name__} ({e.strerror})" if isinstance(e, OSError) and e.errno and e.strerror else \
        type(e).__name__


def load_all(load: Callable, items: Iterable, workers: int | None = None) -> tuple[list, list[str | None]]:
    """(values, errors) of `load` over `items`: a failed item has value None and as error its failure_name (or a
    UsageError's own line)."""
    pairs = list(stream(load, items, workers))
    return [v for v, _ in pairs], [e for _, e in pairs]
