"""Small datasets generated in the exact real layouts (CheXpert-v1.0-small, NIH, MURA-v1.1, folders)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

CHEXPERT_COLUMNS = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", "No Finding", "Enlarged Cardiomediastinum",
                    "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema", "Consolidation", "Pneumonia",
                    "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture", "Support Devices"]
FIVE = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]


def write_image(path: Path, size=(40, 48), seed=0, mode="L") -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    a = rng.integers(0, 256, size=(size[1], size[0]), dtype=np.uint8)
    Image.fromarray(a, "L").convert(mode).save(path)


def chexpert(tmp: Path, n_train=24, n_valid=8, values=None, seed=0) -> Path:
    """CheXpert-v1.0-small/{train,valid}.csv with Path prefixes and JPEGs; returns the dataset folder."""
    root = tmp / "CheXpert-v1.0-small"
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("valid", n_valid)):
        rows = []
        for i in range(n):
            view = "frontal" if i % 3 else "lateral"
            rel = f"CheXpert-v1.0-small/{split}/patient{i // 2:05d}/study1/view{i % 2 + 1}_{view}.jpg"
            write_image(tmp / rel, seed=i, size=(40, 48) if i % 2 else (48, 40))
            obs = {c: rng.choice([1.0, 0.0, -1.0, np.nan]) for c in CHEXPERT_COLUMNS[5:]}
            if values is not None and split == "train":
                obs.update(values[i])
            rows.append({"Path": rel, "Sex": "Female", "Age": 60, "Frontal/Lateral": view.capitalize(),
                         "AP/PA": "AP" if view == "frontal" else "", **obs})
        pd.DataFrame(rows, columns=CHEXPERT_COLUMNS).to_csv(root / f"{split}.csv", index=False)
    return root


def nih(tmp: Path, n=40, size=32) -> Path:
    """ChestX-ray14 layout: images/*.png, Data_Entry_2017.csv, train_val_list.txt, test_list.txt."""
    root = tmp / "ChestX-ray14"
    findings = ["No Finding", "Atelectasis", "Cardiomegaly|Effusion", "Edema", "Consolidation|Atelectasis", "Hernia"]
    rows = []
    for i in range(n):
        name = f"{i // 3:08d}_{i % 3:03d}.png"
        write_image(root / "images" / name, size=(size, size), seed=i, mode="RGB" if i % 2 else "L")
        rows.append({"Image Index": name, "Finding Labels": findings[i % len(findings)], "Follow-up #": i % 3,
                     "Patient ID": i // 3, "Patient Age": 50, "Patient Gender": "M", "View Position": "PA"})
    pd.DataFrame(rows).to_csv(root / "Data_Entry_2017.csv", index=False)
    names = [r["Image Index"] for r in rows]
    (root / "train_val_list.txt").write_text("\n".join(names[: int(n * 0.8)]) + "\n")
    (root / "test_list.txt").write_text("\n".join(names[int(n * 0.8):]) + "\n")
    return root


def mura(tmp: Path) -> Path:
    """MURA-v1.1 layout: header-less image-path CSVs, labels in the study folder suffix."""
    root = tmp / "MURA-v1.1"
    for split, n in (("train", 12), ("valid", 6)):
        lines = []
        for i in range(n):
            part = "XR_SHOULDER" if i % 4 else "XR_ELBOW"
            label = "positive" if i % 2 else "negative"
            for j in (1, 2):
                rel = f"MURA-v1.1/{split}/{part}/patient{i:05d}/study1_{label}/image{j}.png"
                write_image(tmp / rel, size=(36, 30), seed=i * 10 + j)
                lines.append(rel)
        (root / f"{split}_image_paths.csv").write_text("\n".join(lines) + "\n")
    return root


def folders(tmp: Path, split_layout=True) -> Path:
    root = tmp / "xrays"
    for split in (["train", "valid"] if split_layout else [""]):
        for c, cls in enumerate(["normal", "pneumonia"]):
            for i in range(6 if split != "valid" else 3):
                write_image(root / split / cls / f"img{i}.png", size=(32, 32), seed=c * 100 + i)
    return root


def csv_table(tmp: Path) -> Path:
    """A generic label table: path column + label columns with 1 / 0 / -1 / blank."""
    rows = []
    for i in range(12):
        write_image(tmp / "scans" / f"{i}.png", size=(30, 34), seed=i)
        rows.append({"path": f"scans/{i}.png", "Edema": [1, 0, -1, ""][i % 4], "Effusion": i % 2})
    pd.DataFrame(rows).to_csv(tmp / "labels.csv", index=False)
    return tmp


def ixi(tmp: Path, n_subjects=8, shape=(32, 32, 20)) -> Path:
    """IXI T1 volumes named like the real ones (IXI012-HH-1211-T1.nii.gz) plus IXI.csv demographics."""
    import nibabel as nib

    root = tmp / "IXI-T1"
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n_subjects):
        sid = 12 + i
        yy, xx = np.mgrid[: shape[0], : shape[1]]
        head = ((yy - shape[0] / 2) ** 2 + (xx - shape[1] / 2) ** 2 < (shape[0] / 2.5) ** 2).astype(np.float32)
        vol = np.stack([head * (200 + 50 * np.sin(k / 3)) for k in range(shape[2])], -1)
        vol = (vol + rng.normal(0, 5, shape)).astype(np.int16)
        nib.save(nib.Nifti1Image(vol, np.eye(4)), str(root / f"IXI{sid:03d}-HH-{1200 + i}-T1.nii.gz"))
        rows.append({"IXI_ID": sid, "SEX_ID (1=m, 2=f)": 1 + i % 2, "ETHNIC_ID": 1})
    pd.DataFrame(rows).to_csv(root / "IXI.csv", index=False)
    return root


def write_dicom(path: Path, stored: np.ndarray, bits: int = 8, photometric: str = "MONOCHROME2", rescale=None,
                window=None, pixels: bool = True, frames: int = 1, syntax=None, encapsulated=None) -> Path:
    """A digital X-ray DICOM file (pydicom) with `stored` values of `bits` bits; rescale = (slope, intercept),
    window = (center, width) in rescaled units; `encapsulated` frames for compressed transfer syntaxes."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax or ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = "DX", "anon"
    if pixels:
        ds.Rows, ds.Columns = stored.shape[-2:]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = (8 if bits == 8 else 16), bits, bits - 1, 0
        if frames > 1:
            ds.NumberOfFrames = frames
        if rescale:
            ds.RescaleSlope, ds.RescaleIntercept = rescale
        if window:
            ds.WindowCenter, ds.WindowWidth = window
        ds.PixelData = encapsulate(encapsulated) if encapsulated else \
            stored.astype(np.uint8 if bits == 8 else np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


# ---- MedMNIST: np.savez_compressed of uint8 arrays, as the medmnist package writes them ----

MEDMNIST_COUNTS = {"train": 48, "val": 16, "test": 16}


def write_npz(root: Path, name: str, size: int = 28, n_classes: int = 2, multi_label: int = 0, rgb: bool = False,
              compressed: bool = True, drop: str | None = None, **wrong) -> Path:
    """`<name>.npz` (28 px) or `<name>_<size>.npz`: images whose brightness follows their first class, so a model
    can learn something in one epoch. `drop` leaves out one array; `wrong` replaces arrays by name."""
    rng = np.random.default_rng(0)
    arrays = {}
    for prefix, n in MEDMNIST_COUNTS.items():
        if multi_label:
            y = (rng.random((n, multi_label)) < 0.3).astype(np.uint8)
            y[0], y[1] = 1, 0  # both classes of every label in every split
            level = y[:, 0]
        else:
            y = (np.arange(n) % n_classes).astype(np.uint8)[:, None]
            level = y[:, 0] / max(1, n_classes - 1)
        shape = (n, size, size, 3) if rgb else (n, size, size)
        noise = rng.integers(0, 60, shape)
        base = (60 + 120 * level).reshape((n,) + (1,) * (len(shape) - 1))
        arrays[f"{prefix}_images"] = np.clip(base + noise, 0, 255).astype(np.uint8)
        arrays[f"{prefix}_labels"] = y
    arrays.update(wrong)
    arrays.pop(drop, None)
    root.mkdir(parents=True, exist_ok=True)
    path = root / (f"{name}.npz" if size == 28 else f"{name}_{size}.npz")
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path
