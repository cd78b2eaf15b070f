"""Classification items: a gray image fitted to the model's size (uint8, decoded once into RAM when it fits) and its
label row, served to fastai's TfmdDL, whose batch transforms (on the device) do the rest.

Hand-written rather than a fastai DataBlock: its item pipeline (a pandas row, ColReader, PIL Resize, ToTensor and
the label transforms, each dispatched per item) cost about 3 ms an image on this 2-core CPU - 15 % of a demo epoch
- where cropping an array in RAM costs 0.02 ms. The crops are fastai's Resize(method='crop') in the other order:
resize the shorter side to the size once, then a random square crop in training and the centre one otherwise."""
from __future__ import annotations

import random
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from fastai.data.core import DataLoaders, TfmdDL
from fastai.torch_core import TensorImage, TensorImageBW, TensorMultiCategory
from PIL import Image

from ..core.config import DataConfig
from ..core.errors import RunError
from .images import open_image, short_side_size
from .medmnist import image_channels
from .memory import failure_name


class GrayTensor(TensorImageBW):
    _show_args = {"cmap": "gray"}  # fastai's default 'Greys' shows radiographs inverted


@dataclass(frozen=True)
class Fit:
    """How a split's images reach the model: resized once (the shorter side to `size`, or both sides with `squish`),
    then cropped to `crop` x `crop` at each use (random in training, centred otherwise; None: no crop)."""

    size: int
    squish: bool = False
    crop: int | None = None
    channels: int = 1  # 3: RGB images, which go straight to the backbone

    def bytes_per_image(self) -> int:
        return self.channels * self.size * self.size * (4 if self.squish else 5) // 4  # a radiograph's long side: ~5:4


def split_fits(cfg: DataConfig, image_size: int) -> tuple[Fit, Fit]:
    """(training, validation) fits. With resize_to (AECNN: 256 -> random 224 crops) validation is resized to
    valid_resize without a crop when given, else centre-cropped like training."""
    c = image_channels(cfg)
    if cfg.resize_to and cfg.valid_resize:
        return Fit(cfg.resize_to, True, image_size, c), Fit(cfg.valid_resize, True, None, c)
    if cfg.resize_to:
        return (Fit(cfg.resize_to, True, image_size, c),) * 2
    return (Fit(image_size, False, image_size, c),) * 2


def fitted(path: str, fit: Fit) -> np.ndarray:
    """The image at `path`, decoded to gray (or RGB) and resized by `fit`, as a writable (H, W) or (H, W, 3) uint8
    array."""
    im = open_image(path, fit.channels)
    size = (fit.size, fit.size) if fit.squish else short_side_size(im.size, fit.size)
    return np.array(im.resize(size, Image.BILINEAR) if im.size != size else im)


def crop(a: np.ndarray, size: int | None, at_random: bool) -> np.ndarray:
    if size is None:
        return a
    h, w = a.shape[:2]
    top = random.randint(0, h - size) if at_random else (h - size) // 2
    left = random.randint(0, w - size) if at_random else (w - size) // 2
    return a[top:top + size, left:left + size]


class GrayItems(torch.utils.data.Dataset):
    """One split's items: (image,) or (image, labels). `images[i]` holds the fitted array, or None to decode it
    when asked (tables too large for RAM). split_idx 0 (training) makes crops and fastai's batch augmentation
    random."""

    n_inp = 1

    def __init__(self, rows: pd.DataFrame, labels: list[str], fit: Fit, split_idx: int, images: list | None = None,
                 with_labels: bool = True, single_label: bool = False):
        self.rows, self.vocab, self.fit, self.split_idx = rows.reset_index(drop=True), list(labels), fit, split_idx
        self.single_label = single_label  # one class per image (softmax) rather than independent labels
        self.paths = self.rows["path"].tolist()
        self.targets = self.rows[self.vocab].to_numpy(np.float32, copy=True) if with_labels else None
        self.images = images if images is not None else [None] * len(self.paths)

    def __len__(self):
        return len(self.paths)

    @contextmanager
    def set_split_idx(self, split_idx: int):
        """fastai's Datasets.set_split_idx, which Learner.tta uses: 0 turns the random crops and augmentation on."""
        old, self.split_idx = self.split_idx, split_idx
        try:
            yield self
        finally:
            self.split_idx = old

    def image(self, i: int) -> np.ndarray:
        if self.images[i] is not None:
            return self.images[i]
        try:
            return fitted(self.paths[i], self.fit)
        except (OSError, ValueError, SyntaxError) as e:  # only for tables too large to decode-check up front
            raise RunError(f"image {self.paths[i]} does not decode ({failure_name(e)}); run `medcolor data check` "
                           f"and remove it from the table") from None

    def decode(self, sample, full: bool = True):
        """fastai's show_batch hook (TfmdDL asks its dataset to decode each sample): the target row becomes the
        names of its positive labels, a fastai MultiCategory, which knows how to show itself as a title."""
        from fastai.data.transforms import MultiCategory

        if len(sample) < 2:
            return sample
        x, y = sample
        return x, MultiCategory([lab for lab, v in zip(self.vocab, y.tolist()) if v == 1] or ["no label"])

    def __getitem__(self, i: int):
        a = torch.from_numpy(crop(self.image(i), self.fit.crop, self.split_idx == 0))
        x = GrayTensor(a[None]) if a.ndim == 2 else TensorImage(a.permute(2, 0, 1).contiguous())
        return (x,) if self.targets is None else (x, TensorMultiCategory(torch.from_numpy(self.targets[i])))


class GrayDataLoaders(DataLoaders):
    """fastai DataLoaders whose test_dl takes table rows (a DataFrame with `path`, and the labels when with_labels);
    images already in RAM are reused."""

    def __init__(self, *loaders, known: dict | None = None, **kwargs):
        super().__init__(*loaders, **kwargs)
        self.known = known or {}

    def test_dl(self, rows: pd.DataFrame, with_labels: bool = False, bs: int | None = None, **kwargs):
        valid = self.valid_ds
        images = [self.known.get(p) for p in rows["path"]]
        ds = GrayItems(rows, valid.vocab, valid.fit, 1, images, with_labels, valid.single_label)
        return self.valid.new(ds, bs=bs or self.valid.bs, shuffle=False, drop_last=False, **kwargs)


def inference_dataloaders(fit: Fit, labels: list[str], single_label: bool, after_batch: list, bs: int, device):
    """GrayDataLoaders with no data of their own, only the validation preprocessing: `test_dl(rows)` feeds given
    images to a model loaded from its run folder (the training data is never read)."""
    # fastai's TfmdDL runs one item through its pipeline when made: a blank image held in memory, never a file
    blank = np.zeros((fit.size, fit.size) + ((3,) if fit.channels == 3 else ()), np.uint8)
    rows = pd.DataFrame({"path": [""], **{lab: [0.0] for lab in labels}})
    stand_in = GrayItems(rows, labels, fit, 1, [blank], single_label=single_label)
    return gray_dataloaders({"train": stand_in, "valid": stand_in}, after_batch, bs, 0, device, {}, drop_last=False)


def gray_dataloaders(splits: dict, after_batch: list, bs: int, num_workers: int, device, known: dict,
                     drop_last: bool = True, weights=None):
    """GrayDataLoaders over {'train': GrayItems, 'valid': GrayItems}: shuffled, full training batches; with
    `weights`, training images drawn with replacement by those weights (fastai's WeightedDL)."""
    from fastai.callback.data import WeightedDL
    from fastai.data.transforms import IntToFloatTensor

    tfms = [IntToFloatTensor(), *after_batch]
    extra = {} if weights is None else {"wgts": weights}
    train = (TfmdDL if weights is None else WeightedDL)(splits["train"], bs=bs, shuffle=True, drop_last=drop_last,
                                                        after_batch=tfms, num_workers=num_workers, device=device, **extra)
    valid = TfmdDL(splits["valid"], bs=bs, shuffle=False, after_batch=tfms, num_workers=num_workers, device=device)
    return GrayDataLoaders(train, valid, known=known, device=device)
