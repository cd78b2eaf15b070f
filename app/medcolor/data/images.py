"""Decoding any radiograph to one 8-bit gray channel, and checking that images exist and decode."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..core.errors import UsageError

SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


def open_gray(fn) -> Image.Image:
    """A PIL 'L' image. 16-bit data is scaled by its bit depth (12-bit data by 4095, full range by 65535);
    fastai's PILImageBW would clip it at 255. 32-bit float data in [0, 1] is scaled by 255, other float ranges
    from their minimum to their maximum (PIL's own conversion would clip them near black). RGB(A) is converted to
    luminance. DICOM goes through data.dicom."""
    from .dicom import is_dicom, read_dicom
    from .medmnist import is_member, read_image

    if is_member(fn):  # <file>.npz/<split>/<index>: an image inside a MedMNIST file
        return Image.fromarray(read_image(fn)).convert("L")
    if is_dicom(fn):
        return read_dicom(fn)
    im = Image.open(fn)
    if im.mode == "F":  # 32-bit float (TIFF): [0, 1] data as it is, other ranges stretched from min to max
        a = np.nan_to_num(np.asarray(im, dtype=np.float32))
        lo, hi = (0.0, 1.0) if a.min() >= 0 and a.max() <= 1 else (float(a.min()), float(a.max()))
        return Image.fromarray(np.round((a - lo) / max(hi - lo, 1e-12) * 255).astype(np.uint8), "L")
    if im.mode in SIXTEEN_BIT:
        a = np.asarray(im).astype(np.float32)
        top = 2.0 ** max(8, int(np.ceil(np.log2(float(a.max()) + 1)))) - 1
        return Image.fromarray(np.round(np.clip(a, 0, None) / top * 255).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA", "P"):
        im = im.convert("RGB")
    return im.convert("L")


def open_rgb(fn) -> Image.Image:
    """A PIL 'RGB' image, for data read in color (MedMNIST's RGB datasets)."""
    from .medmnist import is_member, read_image

    return Image.fromarray(read_image(fn)).convert("RGB") if is_member(fn) else Image.open(fn).convert("RGB")


def open_image(fn, channels: int = 1) -> Image.Image:
    """The image as a model with `channels` input channels reads it: RGB for 3, else gray."""
    return open_rgb(fn) if channels == 3 else open_gray(fn)


def image_name(path) -> str:
    """An image's name for a figure: its file name, or 'breastmnist test #12' for an image inside a MedMNIST file
    (whose last path part is only an index)."""
    from .medmnist import is_member

    if not is_member(path):
        return Path(path).name
    npz, split, index = str(path).rsplit("/", 2)
    return f"{Path(npz).stem} {split} #{index}"


def decodes(path) -> None:
    """Decode `path` fully and keep nothing (a check); an image inside a MedMNIST file is checked by streaming its
    array once (its type and shape are known from the header)."""
    from .medmnist import is_member, verify

    verify(path) if is_member(path) else open_gray(path).load()


def decode_errors(paths, workers: int | None = None) -> list[str | None]:
    """Per path, why it does not decode (None when it does); memory stays flat however many there are."""
    from .memory import stream

    return [error for _, error in stream(decodes, paths, workers)]


def require_decodable(paths) -> None:
    """One line naming the first image that does not decode (and how many do not)."""
    bad = [(p, e) for p, e in zip(paths, decode_errors(paths)) if e]
    if bad:
        path, why = bad[0]
        reason = why if why.startswith(str(path)) else f"{path} cannot be decoded as an image ({why})"
        raise UsageError(reason + (f"; {len(bad) - 1} more images do not decode" if len(bad) > 1 else ""))


def find_bad_images(paths, workers: int | None = None) -> tuple[list[str], list[str]]:
    """(missing, undecodable) among `paths`."""
    paths = list(paths)
    exists = [image_exists(p) for p in paths]
    missing = [p for p, here in zip(paths, exists) if not here]
    present = [p for p, here in zip(paths, exists) if here]
    return missing, [p for p, e in zip(present, decode_errors(present, workers)) if e]


def short_side_size(size: tuple[int, int], side: int) -> tuple[int, int]:
    """(width, height) with the shorter side scaled to `side` and the aspect kept (neither below `side`)."""
    scale = side / min(size)
    return max(side, round(size[0] * scale)), max(side, round(size[1] * scale))


def describe(paths: list[str], what: str, n: int = 3) -> str:
    shown = ", ".join(paths[:n]) + (", ..." if len(paths) > n else "")
    return f"{len(paths)} {what} ({shown})"


def image_exists(path) -> bool:
    from .medmnist import is_member, member_exists

    return member_exists(path) if is_member(path) else os.path.exists(path)


def require_existing(paths) -> None:
    missing = [p for p in paths if not image_exists(p)]
    if missing:
        raise UsageError(f"{describe(missing, 'listed images do not exist')}; check data.root, or run "
                         f"`medcolor data check` for a full report")
