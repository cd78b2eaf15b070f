"""DICOM radiographs as 8-bit gray images, decoded by pydicom (the optional `dicom` extra).

Stored values go through the Modality LUT (Rescale Slope / Intercept) and, when the file has one, the VOI LUT or
window (pydicom's `apply_voi_lut`); the result is scaled from the range those steps can produce - the stored
bit depth after rescaling, as pydicom's windowing defines it, or the VOI LUT's own depth - to 0..255, so a
12-bit image without a window is scaled like a 12-bit PNG. MONOCHROME1 (bright = low values) is inverted, so
bone is bright in both photometric interpretations. Colour DICOMs become luminance, like RGB PNGs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..core.errors import UsageError

DECODERS = "pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg (or python-gdcm)"


def is_dicom(path) -> bool:
    """A `.dcm` file, or any file with the DICOM preamble ('DICM' at byte 128)."""
    path = Path(path)
    if path.suffix.lower() in (".dcm", ".dicom"):
        return True
    if path.suffix or not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(132)[128:] == b"DICM"


def _pydicom():
    try:
        import pydicom
        return pydicom
    except ImportError:
        raise UsageError("reading DICOM files needs pydicom: pip install 'medcolor[dicom]'") from None


def _pixels(ds, path) -> np.ndarray:
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise UsageError(f"{path} is a multi-frame DICOM ({frames} frames); medcolor reads one image per file - "
                         f"save the frames you need as separate files")
    try:
        return ds.pixel_array
    except Exception as e:  # pydicom raises RuntimeError / NotImplementedError for missing decoder plugins
        syntax = ds.file_meta.get("TransferSyntaxUID")
        if syntax is not None and syntax.is_compressed:
            raise UsageError(f"{path} is compressed ({syntax.name}) and no installed package decodes it; "
                             f"{DECODERS}") from None
        raise UsageError(f"{path}: pixel data cannot be decoded ({str(e).splitlines()[0][:120]})") from None


def output_range(ds) -> tuple[float, float]:
    """The range of values the Modality and VOI LUT steps can produce for this file."""
    if ds.get("VOILUTSequence"):
        return 0.0, 2.0 ** ds.VOILUTSequence[0].LUTDescriptor[2] - 1
    if ds.get("ModalityLUTSequence"):
        return 0.0, 2.0 ** ds.ModalityLUTSequence[0].LUTDescriptor[2] - 1
    bits = int(ds.BitsStored)
    lo, hi = (0.0, 2.0 ** bits - 1) if ds.PixelRepresentation == 0 else (-(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1)
    slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
    return sorted((lo * slope + intercept, hi * slope + intercept))


def read_dicom(path) -> Image.Image:
    """A PIL 'L' image of a single-frame DICOM file."""
    pydicom = _pydicom()
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        ds = pydicom.dcmread(str(path))
    except Exception as e:  # InvalidDicomError, or a truncated file
        raise UsageError(f"{path} is not a readable DICOM file ({type(e).__name__})") from None
    if "PixelData" not in ds:
        raise UsageError(f"{path} is a DICOM file without pixel data (a report or structured document?)")
    arr = _pixels(ds, path)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if not photometric.startswith("MONOCHROME"):
        rgb = arr if photometric == "RGB" else pydicom.pixels.convert_color_space(arr, photometric, "RGB")
        return Image.fromarray(np.asarray(rgb, dtype=np.uint8), "RGB").convert("L")
    values = apply_voi_lut(apply_modality_lut(arr, ds), ds).astype(np.float64)
    lo, hi = output_range(ds)
    gray = np.clip((values - lo) / max(hi - lo, 1e-12), 0, 1) * 255
    if photometric == "MONOCHROME1":
        gray = 255 - gray
    return Image.fromarray(np.round(gray).astype(np.uint8), "L")
