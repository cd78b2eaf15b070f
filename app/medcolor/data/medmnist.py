"""MedMNIST v2 / MedMNIST+ files as the `medmnist` package writes them: `<flag>.npz` (28 px) or `<flag>_<size>.npz`
(64, 128, 224), holding uint8 arrays train_images / train_labels / val_images / val_labels / test_images /
test_labels. medcolor reads them and never downloads them (the `medmnist` package does; the data are CC BY 4.0).

An image is addressed as `<file>.npz/<split>/<index>` - the npz file taken as a folder - so tables, checks, caches
and predictions.csv treat it like any other image path. The npz members are read by hand (numpy's own `np.load`
decompresses a whole array to look at its shape): headers for checks, arrays once per process for images."""
from __future__ import annotations

import functools
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..core.errors import UsageError

# task, channels and label names of the 2D datasets, from MedMNIST's INFO (medmnist/info.py, v2.1+)
ORGANS = ["bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right", "liver", "lung-left",
          "lung-right", "pancreas", "spleen"]
DATASETS = {
    "pathmnist": ("multi-class", 3, ["adipose", "background", "debris", "lymphocytes", "mucus", "smooth muscle",
                                     "normal colon mucosa", "cancer-associated stroma",
                                     "colorectal adenocarcinoma epithelium"]),
    "chestmnist": ("multi-label", 1, ["atelectasis", "cardiomegaly", "effusion", "infiltration", "mass", "nodule",
                                      "pneumonia", "pneumothorax", "consolidation", "edema", "emphysema", "fibrosis",
                                      "pleural", "hernia"]),
    "dermamnist": ("multi-class", 3, ["actinic keratoses and intraepithelial carcinoma", "basal cell carcinoma",
                                      "benign keratosis-like lesions", "dermatofibroma", "melanoma",
                                      "melanocytic nevi", "vascular lesions"]),
    "octmnist": ("multi-class", 1, ["choroidal neovascularization", "diabetic macular edema", "drusen", "normal"]),
    "pneumoniamnist": ("binary-class", 1, ["normal", "pneumonia"]),
    "retinamnist": ("ordinal-regression", 3, ["grade 0", "grade 1", "grade 2", "grade 3", "grade 4"]),
    "breastmnist": ("binary-class", 1, ["malignant", "normal, benign"]),
    "bloodmnist": ("multi-class", 3, ["basophil", "eosinophil", "erythroblast", "immature granulocytes", "lymphocyte",
                                      "monocyte", "neutrophil", "platelet"]),
    "tissuemnist": ("multi-class", 1, ["Collecting Duct, Connecting Tubule", "Distal Convoluted Tubule",
                                       "Glomerular endothelial cells", "Interstitial endothelial cells", "Leukocytes",
                                       "Podocytes", "Proximal Tubule Segments", "Thick Ascending Limb"]),
    "organamnist": ("multi-class", 1, ORGANS),
    "organcmnist": ("multi-class", 1, ORGANS),
    "organsmnist": ("multi-class", 1, ORGANS),
}
SIZES = (28, 64, 128, 224)
SPLIT_KEYS = {"train": "train", "valid": "val", "test": "test"}  # medcolor's split name -> the npz's prefix


def image_channels(cfg) -> int:
    """3 for MedMNIST's RGB datasets, and its gray ones with data.as_rgb (MedMNIST's own as_rgb: the gray channel
    repeated): their images go straight to the backbone, no colorizer; else 1 (gray)."""
    rgb = DATASETS.get(cfg.name, ("", 1))[1] == 3 or cfg.as_rgb
    return 3 if cfg.reader == "medmnist" and rgb else 1


def npz_path(root: Path, name: str, size: int) -> Path:
    if name not in DATASETS:
        from ..core.errors import closest

        raise UsageError(f"data.name {name!r} is not a 2D MedMNIST dataset{closest(name, list(DATASETS))}; choose "
                         f"from {', '.join(DATASETS)}")
    if size not in SIZES:
        raise UsageError(f"data.size must be one of {', '.join(map(str, SIZES))} (MedMNIST+ sizes), got {size}")
    path = root / (f"{name}.npz" if size == 28 else f"{name}_{size}.npz")
    if not path.is_file():
        fetch = f"getattr(medmnist, medmnist.INFO['{name}']['python_class'])(split='test', download=True, size={size})"
        raise UsageError(f"{path} does not exist; medcolor reads MedMNIST files and does not download them - the "
                         f"medmnist package does: python -c \"import medmnist; {fetch}\" (or point data.root at them)")
    return path


def member_header(npz: Path, key: str) -> tuple[tuple, np.dtype]:
    """(shape, dtype) of array `key` in `npz`, from its .npy header alone (once per process and file)."""
    return _header(str(npz), key)


@functools.lru_cache(maxsize=64)
def _header(npz: str, key: str) -> tuple[tuple, np.dtype]:
    try:
        with zipfile.ZipFile(npz) as z, z.open(f"{key}.npy") as f:
            shape, _, dtype = npy_header(f)
            return shape, dtype
    except KeyError:
        raise UsageError(f"{npz} has no {key!r} array; a MedMNIST file holds train_images, train_labels, val_images, "
                         f"val_labels, test_images and test_labels") from None
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise UsageError(f"{npz} is not a readable .npz file ({type(e).__name__}); download it again") from None


def check_npz(npz: Path, name: str, size: int) -> dict[str, int]:
    """Images per split, after checking every array's shape and type against the dataset's definition."""
    task, channels, labels = DATASETS[name]
    label_width = len(labels) if task == "multi-label" else 1
    counts = {}
    for split, prefix in SPLIT_KEYS.items():
        (shape, dtype), (lshape, _) = member_header(npz, f"{prefix}_images"), member_header(npz, f"{prefix}_labels")
        image = (size, size) if channels == 1 else (size, size, 3)
        if dtype != np.uint8 or tuple(shape[1:]) != image:
            raise UsageError(f"{npz}: {prefix}_images is {dtype} {tuple(shape)}; {name} at {size} px is uint8 "
                             f"(N, {', '.join(map(str, image))})")
        if tuple(lshape) != (shape[0], label_width):
            raise UsageError(f"{npz}: {prefix}_labels has shape {tuple(lshape)}; {name} needs ({shape[0]}, "
                             f"{label_width}), one row per image")
        counts[split] = int(shape[0])
    return counts


def npy_header(f) -> tuple[tuple, bool, np.dtype]:
    """(shape, fortran_order, dtype) from an open .npy stream, which is left at the start of the data."""
    version = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    return read(f)


@functools.lru_cache(maxsize=2)
def split_array(npz: str, key: str) -> np.ndarray:
    """One array of an npz, read once per process (a stored member is memory-mapped instead of read)."""
    with zipfile.ZipFile(npz) as z:
        info = z.getinfo(f"{key}.npy")
        if info.compress_type == zipfile.ZIP_STORED:  # np.savez: map the bytes where they lie
            with z.open(info) as f:
                shape, fortran, dtype = npy_header(f)
                header = f.tell()
            with open(npz, "rb") as raw:  # the local file header: 30 bytes, then its name and extra field
                raw.seek(info.header_offset + 26)
                name, extra = np.frombuffer(raw.read(4), "<u2")
            offset = info.header_offset + 30 + int(name) + int(extra) + header
            return np.memmap(npz, dtype=dtype, mode="r", shape=shape, order="F" if fortran else "C", offset=offset)
        try:
            with z.open(info) as f:
                return np.lib.format.read_array(f)
        except (zipfile.BadZipFile, EOFError, ValueError, zlib.error) as e:
            _DAMAGED[(npz, key)] = damaged(npz, key, e)  # remembered: a bad array is not re-read for each image
            raise ValueError(_DAMAGED[(npz, key)]) from None


_DAMAGED: dict = {}


def labels(npz: Path, split: str) -> np.ndarray:
    return np.asarray(split_array(str(npz), f"{SPLIT_KEYS[split]}_labels"))


def is_member(path: str) -> bool:
    return ".npz/" in str(path)


def _parts(path: str) -> tuple[str, str, int]:
    npz, split, index = str(path).rsplit("/", 2)
    return npz, split, int(index)


def member_exists(path: str) -> bool:
    try:
        npz, split, index = _parts(path)
        return split in SPLIT_KEYS and Path(npz).is_file() and \
            0 <= index < member_header(Path(npz), f"{SPLIT_KEYS[split]}_images")[0][0]
    except (ValueError, UsageError):
        return False


def verify(path: str) -> None:
    """What decoding `<file>.npz/<split>/<index>` checks, without holding the array: the index exists and the
    member's bytes pass the zip's CRC, streamed once per member and process (memory stays flat)."""
    npz, split, index = _parts(path)
    if not member_exists(path):
        raise ValueError(f"{path}: no image {index} in the {split} split of {npz}")
    problem = _stream_check(npz, f"{SPLIT_KEYS[split]}_images")
    if problem:
        raise ValueError(problem)


@functools.lru_cache(maxsize=64)
def _stream_check(npz: str, key: str) -> str | None:
    try:
        with zipfile.ZipFile(npz) as z, z.open(f"{key}.npy") as f:
            while f.read(1 << 20):
                pass
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
        return damaged(npz, key, e)
    return None


def damaged(npz: str, key: str, e: Exception) -> str:
    return f"{npz}: {key} is damaged ({type(e).__name__}); download the file again"


def read_image(path: str) -> np.ndarray:
    """The (H, W) or (H, W, 3) uint8 image at `<file>.npz/<split>/<index>`."""
    npz, split, index = _parts(path)
    key = f"{SPLIT_KEYS[split]}_images"
    if (npz, key) in _DAMAGED:
        raise ValueError(_DAMAGED[(npz, key)])
    return np.array(split_array(npz, key)[index])
