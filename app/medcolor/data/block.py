"""The one generic builder: a DataConfig (spec + overrides) -> table -> fitted gray items (in RAM when they fit)
-> fastai DataLoaders with fastai's batch augmentation."""
from __future__ import annotations

import pandas as pd
from fastai.vision.all import Contrast, Flip, Normalize, Rotate, TensorImage, Transform, Zoom

from ..core.config import DataConfig
from ..core.errors import UsageError
from ..core.io import info, warn
from .cache import use_cache
from .images import decode_errors, describe, require_existing
from .leakage import refuse_leakage
from .items import Fit, GrayItems, fitted, gray_dataloaders, inference_dataloaders, split_fits
from .memory import load_all, use_memory
from .readers import Table, images_inside, read_table


def batch_transforms(cfg: DataConfig) -> list:
    """Thesis augmentation (rotation +-10 deg and zoom 1.0-1.1, each p=0.75; train only), optional flips and
    contrast jitter (AECNN), then normalisation."""
    tfms = []
    if cfg.augment:
        tfms.append(Rotate(max_deg=cfg.rotate_deg, p=cfg.p_affine))
        if cfg.max_zoom > 1:
            tfms.append(Zoom(min_zoom=1.0, max_zoom=cfg.max_zoom, p=cfg.p_affine))
        if cfg.flip:
            tfms.append(Flip(p=0.5))
        if cfg.contrast:
            tfms.append(Contrast(max_lighting=cfg.contrast, p=0.75))
    return tfms + normalisation(*input_stats(cfg)) + padding(cfg.pad_to)


class PadTo(Transform):
    """data.pad_to: the normalised batch zero-padded, centred, to `size` x `size` (extra pixels right and below) -
    MedMNIST+'s transforms.Pad(fill=0) after Normalize, so padding is the mean, not black. Not undone for show."""

    order = 100  # after Normalize (99)

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def encodes(self, x: TensorImage):
        import torch.nn.functional as F

        h, w = x.shape[-2:]
        top, left = max(0, self.size - h) // 2, max(0, self.size - w) // 2
        return F.pad(x, (left, max(0, self.size - w) - left, top, max(0, self.size - h) - top))


def padding(size: int | None) -> list:
    return [PadTo(size)] if size else []


def input_stats(cfg: DataConfig) -> tuple:
    """(mean, std) of the normalisation: data.mean / data.std for gray images, ImageNet's per channel for RGB ones
    (they go straight to the ImageNet backbone; MedMNIST's gray images too with data.as_rgb)."""
    from fastai.vision.all import imagenet_stats

    from .medmnist import image_channels

    return (list(imagenet_stats[0]), list(imagenet_stats[1])) if image_channels(cfg) == 3 else (cfg.mean, cfg.std)


def normalisation(mean, std) -> list:
    return [Normalize.from_stats(mean if isinstance(mean, list) else [mean], std if isinstance(std, list) else [std])]


VERIFY_LIMIT = 20_000  # decoding every image of a larger table would cost minutes at each start


def screen_images(cfg: DataConfig, df: pd.DataFrame, checked: bool, errors: dict | None = None) -> pd.DataFrame:
    """Undecodable images are skipped with a warning (or an error). `errors` holds what decoding into RAM already
    found; the other images are decoded here, unless they come from a `data cache` or the table is large
    (verify_images: auto) - `medcolor data check` decodes them all once."""
    errors = dict(errors or {})
    if not (checked or cfg.verify_images == "never" or (cfg.verify_images == "auto" and len(df) > VERIFY_LIMIT)):
        unchecked = [p for p in df["path"] if p not in errors]  # each exists: read_existing asked before
        errors.update(zip(unchecked, decode_errors(unchecked)))
    bad = [p for p in df["path"] if errors.get(p)]
    if bad and cfg.on_bad_image == "error":
        raise UsageError(f"{describe(bad, 'images do not decode')}; remove them or set data.on_bad_image=skip")
    if bad:
        warn(f"skipping {describe(bad, 'images that do not decode')}; the first: {errors[bad[0]]}")
    return df[~df["path"].isin(set(bad))]


def used_splits(cfg: DataConfig) -> tuple[str, ...]:
    """The splits a run reads: all three, or without test (data.use_test: false, a tuning trial's) - then no test
    image is listed, checked or decoded, and the run is scored on valid."""
    return ("train", "valid", "test") if cfg.use_test else ("train", "valid")


def read_existing(cfg: DataConfig, image_size: int, splits=None) -> tuple[Table, bool]:
    """The table with `data cache` copies swapped in (and whether they were), every listed file existing."""
    table = read_table(cfg, splits or used_splits(cfg))
    images_inside(cfg, table.df["path"])
    table.df, cached = use_cache(cfg, table.df, image_size)
    require_existing(table.df["path"])
    return table, cached


def prepare_table(cfg: DataConfig, image_size: int, splits=None) -> Table:
    table, cached = read_existing(cfg, image_size, splits)
    volumes = "slice" in table.df  # NIfTI volumes: the reader already opened every header
    table.df = screen_images(cfg, table.df, checked=cached or volumes).reset_index(drop=True)
    return table


def decode_into_memory(cfg: DataConfig, df: pd.DataFrame, fits) -> tuple[dict, dict]:
    """The train and valid images decoded and fitted once into RAM ({split: {path: array}}) and the errors by path
    ({path: error or None}); nothing when they do not fit (data.in_memory)."""
    parts = {split: df.loc[df["split"] == split, "path"].tolist() for split in ("train", "valid")}
    need = sum(len(paths) * fit.bytes_per_image() for paths, fit in zip(parts.values(), fits))
    if not use_memory(cfg, need, f"the {sum(map(len, parts.values())):,} training and validation images"):
        return {}, {}
    images, errors = {}, {}
    for (split, paths), fit in zip(parts.items(), fits):
        arrays, errs = load_all(lambda path: fitted(path, fit), paths)
        images[split] = {p: a for p, a in zip(paths, arrays) if a is not None}
        errors.update(zip(paths, errs))
    return images, errors


def fit_batch_size(n_train: int, bs: int) -> int:
    """fastai drops the last incomplete training batch, so fewer images than train.bs would give no batch at all."""
    if n_train < 2:
        raise UsageError(f"the train split has {n_train} image(s); training needs at least 2 (BatchNorm statistics)")
    if n_train < bs:
        warn(f"only {n_train} training images, fewer than train.bs={bs}: using batch size {n_train}")
        return n_train
    return bs


def check_classes(table: Table) -> None:
    """A single-label task needs two classes in train and in valid; a multi-label one at least one label with
    both classes in valid (else no AUC can pick the best checkpoint). Said before any run folder exists."""
    for split in ("train", "valid"):
        df = table.split(split)
        counts = {lab: int(df[lab].sum()) for lab in table.labels}
        if table.single_label and sum(1 for n in counts.values() if n) < 2:
            shown = ", ".join(f"{k}: {v}" for k, v in counts.items())
            raise UsageError(f"the {split} split has images of one class only ({shown}); a classifier needs at "
                             f"least two classes in train and in valid")
    valid = table.split("valid")
    two = [lab for lab in table.labels if valid[lab].dropna().nunique() == 2]
    if not table.single_label and not two:
        raise UsageError(f"no label has both positives and negatives in the valid split ({len(valid)} images), so no "
                         f"AUC can be computed; use more data or a larger data.valid_pct")
    for lab in sorted(set(table.labels) - set(two)) if not table.single_label else []:
        warn(f"label {lab!r} has one class only in the valid split: its AUC is left out of the mean")


def build_dls_from_config(cfg: DataConfig, image_size: int, bs: int, num_workers: int = 0, device=None,
                          balanced: bool = False):
    """(fastai DataLoaders for train/valid, the full table with its test split); `balanced`: training batches drawn
    by fastai's WeightedDL (train.sampler: balanced)."""
    table, cached = read_existing(cfg, image_size)
    fits = split_fits(cfg, image_size)
    if fits[0].channels == 3:
        info(f"{table.about}: its images go straight to the backbone in color, no colorizer")
    images, errors = decode_into_memory(cfg, table.df, fits)
    table.df = screen_images(cfg, table.df, cached, errors).reset_index(drop=True)
    refuse_leakage(table)
    check_classes(table)
    splits = {split: split_items(table, split, fit, images.get(split, {}))
              for split, fit in zip(("train", "valid"), fits)}
    known = {**(images.get("train", {}) if fits[0] == fits[1] else {}), **images.get("valid", {})}
    dls = gray_dataloaders(splits, batch_transforms(cfg), fit_batch_size(len(splits["train"]), bs), num_workers,
                           device, known, weights=balancing_weights(splits["train"]) if balanced else None)
    return dls, table


def balancing_weights(items: GrayItems):
    """train.sampler: balanced - each training image drawn with weight 1 / (images of its class); for multi-label
    data its rarest positive label's count (images without a positive label count as one class, "no finding")."""
    import numpy as np

    from .folds import strata

    classes = strata(items.rows, items.vocab, items.single_label)
    counts = np.bincount(classes)
    return 1.0 / counts[classes]


def inference_dls(spec, bs: int, device=None):
    """DataLoaders that only preprocess, as a run's ModelSpec (model.json, or an export's sidecar) says: its
    validation crop and normalisation, for its labels. No data of their own: `test_dl(rows)` feeds given images."""
    i = spec.input
    fit = Fit(i.size, i.squish, i.crop, i.channels)
    return inference_dataloaders(fit, spec.labels, spec.single_label, normalisation(i.mean, i.std) + padding(i.pad),
                                 bs, device)


def split_items(table: Table, split: str, fit, images: dict) -> GrayItems:
    rows = table.split(split)
    return GrayItems(rows, table.labels, fit, 0 if split == "train" else 1, [images.get(p) for p in rows["path"]],
                     single_label=table.single_label)


def evaluation_rows(cfg: DataConfig, rows: pd.DataFrame) -> pd.DataFrame:
    """Rows a finished model is evaluated on: every listed image must exist; undecodable ones are skipped (or an
    error), as for training. Only these images are looked at."""
    images_inside(cfg, rows["path"])
    require_existing(rows["path"])
    return screen_images(cfg, rows, checked=False).reset_index(drop=True)


def split_rows(table: Table, split: str):
    """One split's rows, for evaluation; an empty split is one line."""
    df = table.split(split)
    if df.empty:
        raise UsageError(f"the {split} split is empty")
    return df.reset_index(drop=True)
