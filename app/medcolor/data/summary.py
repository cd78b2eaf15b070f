"""`medcolor data summary|check|cache`: what a dataset holds, whether its files are sound, a resized copy."""
from __future__ import annotations

from ..core.config import DataConfig
from ..core.errors import UsageError, closest
from ..core.io import warn
from .images import describe, find_bad_images
from .leakage import describe_overlap, overlaps
from .readers import images_inside, read_table


def summarize(cfg: DataConfig, split: str = "train") -> dict:
    """Images and positives per label after label policy and subset; reads only the label table. Without split
    files (ChestX-ray14's lists) the counts cover the whole table; with them, every split's size is reported."""
    if split not in ("train", "valid", "test"):
        raise UsageError(f"--split must be train, valid or test, got {split!r}{closest(split, ['train', 'valid', 'test'])}")
    table = read_table(cfg, splits=(split,), allow_unsplit=True)
    unsplit = bool(table.unsplit_reason)
    df = table.df if unsplit else table.split(split)
    out = {"spec": cfg.spec, "split": "all" if unsplit else split, "n_images": int(len(df)),
           "positives": {lab: int((df[lab] == 1).sum()) for lab in table.labels},
           "uncertain_masked": {lab: int(df[lab].isna().sum()) for lab in table.labels if df[lab].isna().any()},
           "splits": table.split_counts}
    if unsplit:
        out["note"] = "no split files next to the label table: counts cover every image in it"
    if table.about:
        out["dataset"] = table.about
    return out


def format_summary(s: dict) -> str:
    where = "whole table" if s["split"] == "all" else f"{s['split']} split"
    lines = [f"{s['spec']}{': ' + s['dataset'] if s.get('dataset') else ''} ({where}): {s['n_images']:,} images"]
    if s.get("note"):
        lines.append(s["note"])
    elif len(s["splits"]) > 1:
        lines.append("splits: " + ", ".join(f"{k} {v:,}" for k, v in s["splits"].items()))
    lines.append(f"{'label':<28} {'positives':>10}")
    lines += [f"{lab:<28} {n:>10,}" for lab, n in s["positives"].items()]
    lines += [f"{lab:<28} {n:>10,} uncertain (masked)" for lab, n in s["uncertain_masked"].items()]
    return "\n".join(lines)


def check(cfg: DataConfig) -> dict:
    """Every listed image exists and decodes; raises with counts and the first few paths otherwise."""
    table = read_table(cfg)
    paths = table.df["path"].drop_duplicates().tolist()
    images_inside(cfg, paths)
    missing, bad = find_bad_images(paths)
    images, groups = overlaps(table)
    if missing or bad or images:
        problems = [describe(x, what) for x, what in ((missing, "missing"), (bad, "undecodable")) if x]
        problems += [describe_overlap(images, "images are listed")] if images else []
        raise UsageError(f"{len(paths):,} images checked: {'; '.join(problems)}")
    if groups:
        warn(describe_overlap(groups, "patients (groups) have images"))
    return {"spec": cfg.spec, "n_images": len(paths), "missing": 0, "undecodable": 0, "images_in_two_splits": 0,
            "groups_in_two_splits": len(groups)}


def cache(cfg: DataConfig, size: int) -> dict:
    from .cache import build_cache

    if size < 8:
        raise UsageError(f"--size must be at least 8 pixels, got {size}")
    if cfg.reader == "medmnist":
        raise UsageError("MedMNIST files need no cache: their images are small arrays, decoded once into memory")
    table = read_table(cfg)
    paths = table.df["path"].drop_duplicates().tolist()
    images_inside(cfg, paths)
    missing, bad = find_bad_images(paths)
    if missing or bad:
        raise UsageError(f"cannot cache: {describe(missing + bad, 'images are missing or undecodable')}; "
                         f"run `medcolor data check`")
    return build_cache(cfg, paths, size)
