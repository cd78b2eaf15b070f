import io
import re
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fixtures import write_dicom
from medcolor.cli import main
from medcolor.data.dicom import is_dicom, read_dicom
from medcolor.data.images import open_gray
from medcolor.core.errors import UsageError


@pytest.fixture(scope="module")
def xray(sample_dir) -> np.ndarray:
    return np.asarray(open_gray(sorted((sample_dir / "images").glob("*.png"))[3]))


def _png(path, arr, mode="L"):
    Image.fromarray(arr.astype(np.uint8 if mode == "L" else np.uint16)).save(path)
    return path


def _windowed(x, center, width):  # DICOM's LINEAR window (PS3.3 C.11.2.1.2.1) onto 0..255
    return np.round(np.clip((x - (center - 0.5)) / (width - 1) + 0.5, 0, 1) * 255)


def equivalents(folder, xray):
    """(DICOM, equivalent PNG) pairs: 8 / 12 bit, MONOCHROME1 / 2, with and without rescale and window."""
    v12 = xray.astype(np.uint16) * 16 + 7  # 12-bit values
    slope, intercept = 2.0, -1000.0
    window = (2 * 2000 + intercept, 2 * 2500)
    return {
        "8-bit MONOCHROME2": (write_dicom(folder / "m2.dcm", xray), _png(folder / "m2.png", xray)),
        "8-bit MONOCHROME1": (write_dicom(folder / "m1.dcm", 255 - xray, photometric="MONOCHROME1"),
                              folder / "m2.png"),
        "12-bit": (write_dicom(folder / "b12.dcm", v12, bits=12), _png(folder / "b12.png", v12, "I;16")),
        "12-bit MONOCHROME1 with rescale": (write_dicom(folder / "r12.dcm", 4095 - v12, bits=12,
                                                        photometric="MONOCHROME1", rescale=(slope, intercept)),
                                            folder / "b12.png"),
        "12-bit with rescale and window": (write_dicom(folder / "w12.dcm", v12, bits=12, rescale=(slope, intercept),
                                                       window=window),
                                           _png(folder / "w12.png", _windowed(v12 * slope + intercept, *window))),
    }


def test_dicom_decodes_like_the_equivalent_png(tmp_path, xray):
    for case, (dcm, png) in equivalents(tmp_path, xray).items():
        assert np.array_equal(np.asarray(read_dicom(dcm)), np.asarray(open_gray(png))), case


def test_extensionless_dicom_is_recognised(tmp_path, xray):
    path = write_dicom(tmp_path / "IM0001", xray)
    (tmp_path / "README").write_text("not an image")
    assert is_dicom(path) and not is_dicom(tmp_path / "README")
    assert np.array_equal(np.asarray(open_gray(path)), xray)


def test_jpeg_baseline_decodes_through_pillow(tmp_path, xray):
    buf = io.BytesIO()
    Image.fromarray(xray).save(buf, format="JPEG", quality=95)
    path = write_dicom(tmp_path / "j.dcm", xray, syntax="1.2.840.10008.1.2.4.50", encapsulated=[buf.getvalue()])
    assert np.abs(np.asarray(read_dicom(path)).astype(int) - xray).mean() < 3


@pytest.mark.parametrize("kind, message", [
    ("no pixels", "without pixel data"), ("multi-frame", "multi-frame DICOM (2 frames)"),
    ("JPEG-LS", "no installed package decodes it; pip install pylibjpeg"), ("garbage", "not a readable DICOM file")])
def test_unreadable_dicoms_are_one_clear_line(tmp_path, xray, kind, message):
    path = tmp_path / "x.dcm"
    if kind == "no pixels":
        write_dicom(path, xray, pixels=False)
    elif kind == "multi-frame":
        write_dicom(path, np.stack([xray, xray]), frames=2)
    elif kind == "JPEG-LS":
        write_dicom(path, xray, syntax="1.2.840.10008.1.2.4.80", encapsulated=[b"\xff\xd8\xff\xf7" + b"\0" * 64])
    else:
        path.write_bytes(b"not dicom at all")
    with pytest.raises(UsageError, match=re.escape(message)) as e:
        read_dicom(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_predict_gives_the_same_probabilities_for_dicom_and_png(demo_runs, tmp_path, xray, capsys):
    _, runs = demo_runs
    pairs = equivalents(tmp_path, xray)
    files = [str(p) for pair in pairs.values() for p in pair]
    assert main(["predict", str(runs[0]), *files, "--out", str(tmp_path / "p.csv")]) == 0
    preds = pd.read_csv(tmp_path / "p.csv").set_index("path")
    for case, (dcm, png) in pairs.items():
        assert np.allclose(preds.loc[str(dcm)].filter(like="p_"), preds.loc[str(png)].filter(like="p_"), atol=1e-6), case


def test_predict_names_a_dicom_without_pixels(demo_runs, tmp_path, xray, capsys):
    _, runs = demo_runs
    empty = write_dicom(tmp_path / "report.dcm", xray, pixels=False)
    assert main(["predict", str(runs[0]), str(empty)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {empty} is a DICOM file without pixel data (a report or structured document?)"


def test_a_folder_dataset_of_dicom_files(tmp_path, xray, capsys, monkeypatch):
    monkeypatch.setenv("MEDCOLOR_CACHE_DIR", str(tmp_path / "cache"))
    for split, n in (("train", 6), ("valid", 4)):
        for cls in ("normal", "effusion"):
            for i in range(n):
                write_dicom(tmp_path / "ds" / split / cls / f"IM{i:04d}", np.roll(xray, 3 * i, axis=1))
    root = str(tmp_path / "ds")
    assert main(["data", "check", "folder", "--root", root, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_images"] == 20
    assert main(["data", "cache", "folder", "--root", root, "--size", "32"]) == 0
