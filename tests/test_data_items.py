import numpy as np
import pandas as pd
import pytest
import torch

from medcolor.data import load_data_config
from medcolor.data.block import build_dls_from_config
from medcolor.data.items import Fit, GrayItems, crop, fitted, split_fits

from fixtures import nih, write_image


def test_fitting_resizes_the_shorter_side_once_and_crops_squares(tmp_path):
    write_image(tmp_path / "wide.png", size=(80, 40))  # (width, height)
    a = fitted(str(tmp_path / "wide.png"), Fit(20, crop=20))
    assert a.shape == (20, 40) and a.dtype == np.uint8 and a.flags.writeable
    assert crop(a, 20, at_random=False).shape == (20, 20)
    assert np.array_equal(crop(a, 20, at_random=False), a[:, 10:30])
    columns = np.tile(np.arange(40, dtype=np.uint8), (20, 1))  # each pixel holds its column
    lefts = {int(crop(columns, 20, at_random=True)[0, 0]) for _ in range(60)}
    assert len(lefts) > 5 and min(lefts) >= 0 and max(lefts) <= 20  # random crops move, inside the image
    assert fitted(str(tmp_path / "wide.png"), Fit(16, squish=True)).shape == (16, 16)


def test_aecnn_fits_resize_then_crop_in_training_and_resize_only_in_validation():
    cfg = load_data_config("nih-sample", ["resize_to=64", "valid_resize=48"])
    assert split_fits(cfg, 32) == (Fit(64, True, 32), Fit(48, True, None))
    assert split_fits(load_data_config("nih-sample"), 32) == (Fit(32, False, 32),) * 2


def test_items_from_ram_equal_items_decoded_when_asked(tmp_path):
    root = nih(tmp_path, n=12, size=40)
    rows = pd.DataFrame({"path": sorted(str(p) for p in (root / "images").glob("*.png")), "a": 1.0})
    fit = Fit(32, crop=32)
    in_ram = GrayItems(rows, ["a"], fit, 1, [fitted(p, fit) for p in rows["path"]])
    on_disk = GrayItems(rows, ["a"], fit, 1)
    assert all(torch.equal(in_ram[i][0], on_disk[i][0]) for i in range(len(rows)))
    x, y = in_ram[0]
    assert type(x).__name__ == "GrayTensor" and x.shape == (1, 32, 32) and y.tolist() == [1.0]
    assert len(GrayItems(rows, ["a"], fit, 1, with_labels=False)[0]) == 1


def test_an_image_that_fails_when_first_read_in_training_says_why(tmp_path):
    from medcolor.core.errors import RunError

    (tmp_path / "text.png").write_bytes(b"not an image")
    (tmp_path / "folder.png").mkdir()
    rows = pd.DataFrame({"path": [str(tmp_path / "text.png"), str(tmp_path / "folder.png")], "a": 1.0})
    items = GrayItems(rows, ["a"], Fit(32, crop=32), 0)
    with pytest.raises(RunError, match=r"text.png does not decode \(UnidentifiedImageError\); run `medcolor data"):
        items[0]
    with pytest.raises(RunError, match=r"folder.png does not decode \(IsADirectoryError \(Is a directory\)\)"):
        items[1]


@pytest.mark.parametrize("in_memory", ["always", "never"])
def test_validation_batches_are_the_same_from_ram_and_from_disk(in_memory):
    ref = build_dls_from_config(load_data_config("nih-sample", ["in_memory=always"]), 64, bs=16)[0].valid.one_batch()
    dls, _ = build_dls_from_config(load_data_config("nih-sample", [f"in_memory={in_memory}"]), 64, bs=16)
    assert all(torch.equal(a, b) for a, b in zip(ref, dls.valid.one_batch()))
    assert (len(dls.known) > 0) == (in_memory == "always")


def test_test_dl_reuses_images_already_in_ram(monkeypatch):
    import medcolor.data.items as items

    dls, table = build_dls_from_config(load_data_config("nih-sample"), 64, bs=8)
    monkeypatch.setattr(items, "fitted", lambda *a: pytest.fail("decoded again"))
    x, y = dls.test_dl(table.split("valid").head(8), with_labels=True).one_batch()
    assert x.shape == (8, 1, 64, 64) and y.shape == (8, 6)
