"""The one generic builder: a DataConfig (spec + overrides) -> fastai DataBlock -> DataLoaders."""
from __future__ import annotations

import numpy as np
import pandas as pd
from fastai.vision.all import (ColReader, ColSplitter, Contrast, DataBlock, Flip, ImageBlock, MultiCategoryBlock, Normalize,
                               PILImageBW, RandomCrop, Resize, Rotate, TensorImageBW, Zoom)

from ..config import DataConfig
from ..errors import RunError, UsageError
from ..io import warn
from .cache import use_cache
from .images import describe, find_bad_images, open_gray, require_existing
from .readers import Table, read_table


class GrayTensor(TensorImageBW):
    _show_args = {"cmap": "gray"}  # fastai's default 'Greys' shows radiographs inverted


class GrayImage(PILImageBW):
    """fastai's gray image, opened with medcolor's decoder (16-bit scaling, RGB(A) -> gray)."""

    _show_args, _tensor_cls = {"cmap": "gray"}, GrayTensor

    @classmethod
    def create(cls, fn, **kwargs):
        try:
            return cls(open_gray(fn))
        except (OSError, ValueError, SyntaxError) as e:  # only for tables too large to decode-check up front
            raise RunError(f"image {fn} does not decode ({type(e).__name__}); run `medcolor data check` and "
                           f"remove it from the table") from None


class LabelReader:
    """The row's label values as one float vector (ColReader returns a scalar for a single label)."""

    def __init__(self, labels: list[str]):
        self.labels = list(labels)

    def __call__(self, row):
        return row[self.labels].to_numpy(dtype=np.float32)


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
    return tfms + [Normalize.from_stats([cfg.mean], [cfg.std])]


def item_transforms(cfg: DataConfig, image_size: int) -> list:
    """Resize(method='crop'): a random square crop in training, the centre crop in validation; with resize_to,
    training resizes first and takes random image_size crops (AECNN: 256 -> 224, 1024 -> 896), validation resizes
    the whole image to valid_resize (AECNN: 256, 896), or centre-crops image_size without it."""
    if cfg.resize_to and cfg.valid_resize:  # split_idx 0: training only, 1: validation (and test_dl) only
        return [Resize(cfg.resize_to, method="squish", split_idx=0), RandomCrop(image_size, split_idx=0),
                Resize(cfg.valid_resize, method="squish", split_idx=1)]
    if cfg.resize_to:
        return [Resize(cfg.resize_to, method="squish"), RandomCrop(image_size)]
    return [Resize(image_size, method="crop")]


def build_datablock(cfg: DataConfig, labels: list[str], image_size: int) -> DataBlock:
    return DataBlock(blocks=(ImageBlock(cls=GrayImage), MultiCategoryBlock(encoded=True, vocab=labels)),
                     get_x=ColReader("path"), get_y=LabelReader(labels), splitter=ColSplitter("is_valid"),
                     item_tfms=item_transforms(cfg, image_size), batch_tfms=batch_transforms(cfg))


VERIFY_LIMIT = 20_000  # decoding every image of a larger table would cost minutes at each start


def screen_images(cfg: DataConfig, df: pd.DataFrame, checked: bool) -> pd.DataFrame:
    """Missing files are an error; undecodable ones are skipped with a warning (or an error). Large tables are
    only checked for existence (verify_images: auto); `medcolor data check` decodes them all once."""
    require_existing(df["path"])
    if checked or cfg.verify_images == "never" or (cfg.verify_images == "auto" and len(df) > VERIFY_LIMIT):
        return df
    _, bad = find_bad_images(df["path"])
    if bad and cfg.on_bad_image == "error":
        raise UsageError(f"{describe(bad, 'images do not decode')}; remove them or set data.on_bad_image=skip")
    if bad:
        warn(f"skipping {describe(bad, 'images that do not decode')}")
    return df[~df["path"].isin(set(bad))]


def prepare_table(cfg: DataConfig, image_size: int, splits=("train", "valid", "test")) -> Table:
    table = read_table(cfg, splits)
    df, cached = use_cache(cfg, table.df, image_size)
    volumes = "slice" in df  # NIfTI volumes: the reader already opened every header
    table.df = screen_images(cfg, df, checked=cached or volumes).reset_index(drop=True)
    return table


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


def build_dls_from_config(cfg: DataConfig, image_size: int, bs: int, num_workers: int = 0, device=None):
    """fastai DataLoaders for train/valid; `dls.table` keeps the full table (test split included)."""
    table = prepare_table(cfg, image_size)
    check_classes(table)
    df = table.df[table.df["split"].isin(["train", "valid"])].assign(is_valid=lambda d: d["split"] == "valid")
    bs = fit_batch_size(int((~df["is_valid"]).sum()), bs)
    dls = build_datablock(cfg, table.labels, image_size).dataloaders(
        df.reset_index(drop=True), bs=bs, num_workers=num_workers, device=device)
    dls.table = table
    return dls


def split_dl(dls, split: str):
    """A non-shuffled DataLoader over one split of `dls.table` with labels (for evaluation / prediction)."""
    df = dls.table.split(split)
    if df.empty:
        raise UsageError(f"the {split} split is empty")
    return dls.test_dl(df.reset_index(drop=True), with_labels=True)
