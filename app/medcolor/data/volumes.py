"""Images for the reconstruction task: NIfTI slices (IXI) or decoded images, as (input, target) pairs in [0, 1]
with the same random patch and flips on both and the denoising noise on the input only. Training and validation
slices are read into RAM once, volume by volume, when they fit (data.in_memory): shuffled slices read from disk
re-read their whole volume almost every time."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..core.config import DataConfig


@lru_cache(maxsize=8)
def load_volume(path: str) -> np.ndarray:
    """A NIfTI volume scaled to [0, 1] by its own minimum and maximum (kept for the slices that follow)."""
    import nibabel as nib

    v = np.asarray(nib.load(path).dataobj, dtype=np.float32)
    lo, hi = float(v.min()), float(v.max())
    return (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)


def read_item(row) -> torch.Tensor:
    """(1, H, W) float in [0, 1]: a NIfTI slice (ixi) or a decoded image (any other spec)."""
    return as_tensor(stored_item(row["path"], row.get("slice")))


def stored_item(path: str, slice_=None) -> np.ndarray:
    """What RAM keeps of an item: a NIfTI slice as float16 in [0, 1] (an error below 2.5e-4), an image as uint8."""
    from .images import open_gray

    if slice_ is not None and not pd.isna(slice_):
        return load_volume(path)[..., int(slice_)].astype(np.float16)
    return np.array(open_gray(path))


def as_tensor(a: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(a))[None].float()
    return t / 255.0 if a.dtype == np.uint8 else t


def read_into_memory(rows: pd.DataFrame, cfg: DataConfig) -> list | None:
    """Every row's stored item, each file read once (in threads), or None when they do not fit in RAM."""
    from .memory import load_all, use_memory

    if rows.empty or not use_memory(cfg, len(rows) * stored_item(*_key(rows.iloc[0])).nbytes,
                                    f"the {len(rows):,} training and validation images"):
        return None
    keys = [_key(row) for _, row in rows.iterrows()]
    by_path: dict[str, list] = {}
    for key in keys:
        by_path.setdefault(key[0], []).append(key)
    per_path, _ = load_all(lambda path: {key: stored_item(*key) for key in by_path[path]}, list(by_path))
    found = {key: a for items in per_path if items for key, a in items.items()}
    return [found.get(key) for key in keys]  # None: read when asked (its error comes then)


def _key(row) -> tuple:
    return row["path"], row.get("slice")


def denoise_input(x: torch.Tensor) -> torch.Tensor:
    """Source's denoising augmentation: Gaussian blur on 50 %, then 0-2 of {2 black cut-out patches, coarse
    dropout of 0-5 % of pixels}."""
    from torchvision.transforms.functional import gaussian_blur

    if torch.rand(()) < 0.5:
        x = gaussian_blur(x, kernel_size=5, sigma=float(torch.empty(()).uniform_(0.5, 1.5)))
    x = x.clone()
    h, w = x.shape[-2:]
    for op in torch.randperm(2)[: int(torch.randint(0, 3, ()))].tolist():
        if op == 0:
            for _ in range(2):
                ph, pw = max(1, h // 8), max(1, w // 8)
                top, left = int(torch.randint(0, h - ph + 1, ())), int(torch.randint(0, w - pw + 1, ()))
                x[..., top:top + ph, left:left + pw] = 0
        else:
            x[torch.rand_like(x) < float(torch.empty(()).uniform_(0, 0.05))] = 0
    return x


class PairedImages(torch.utils.data.Dataset):
    """(input, target) pairs. Hand-written: fastai's crop and flip transforms work on PIL images, and here the
    same random patch and flips must reach both tensors while the denoising noise reaches the input only."""

    def __init__(self, rows: pd.DataFrame, cfg: DataConfig, size: int, train: bool, stored: list | None = None):
        self.rows, self.cfg, self.size, self.train = rows.reset_index(drop=True), cfg, size, train
        self.stored = stored

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        y = self._fit(as_tensor(self.stored[i]) if self.stored and self.stored[i] is not None else
                      read_item(self.rows.iloc[i]))
        if self.train and self.cfg.flip and torch.rand(()) < 0.5:
            y = y.flip(-1)
        if self.train and self.cfg.vflip and torch.rand(()) < 0.5:
            y = y.flip(-2)
        x = denoise_input(y) if self.train and self.cfg.denoise else y
        return x, y

    def _fit(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        s = self.size
        if self.cfg.crop == "random" and h >= s and w >= s:
            top = int(torch.randint(0, h - s + 1, ())) if self.train else (h - s) // 2
            left = int(torch.randint(0, w - s + 1, ())) if self.train else (w - s) // 2
            return img[..., top:top + s, left:left + s]
        if (h, w) == (s, s):
            return img
        return F.interpolate(img[None], size=(s, s), mode="bilinear", align_corners=False)[0]


def build_paired_dls(cfg: DataConfig, size: int, bs: int, num_workers: int = 0, device=None):
    """(fastai DataLoaders of (input, target) pairs for train / valid, the full table)."""
    from fastai.data.core import DataLoaders
    from .block import fit_batch_size, prepare_table

    table = prepare_table(cfg, size)
    train, valid = table.split("train"), table.split("valid")
    stored = read_into_memory(pd.concat([train, valid]), cfg) or [None] * (len(train) + len(valid))
    ds = [PairedImages(train, cfg, size, True, stored[:len(train)]), PairedImages(valid, cfg, size, False,
                                                                                  stored[len(train):])]
    dls = DataLoaders.from_dsets(*ds, bs=fit_batch_size(len(ds[0]), bs), num_workers=num_workers, device=device)
    return dls, table
