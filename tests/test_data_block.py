import json
from pathlib import Path

import pytest
import torch

import medcolor
from medcolor.data import load_data_config
from medcolor.data.block import build_dls_from_config, split_rows
from medcolor.core.errors import UsageError

from fixtures import chexpert, csv_table, folders, mura, nih


def batch(spec, root=None, overrides=(), size=32):
    dls, _ = build_dls_from_config(load_data_config(spec, list(overrides), root=root and str(root)), size, bs=4)
    return dls, dls.one_batch()


@pytest.mark.parametrize("spec,make,n_labels", [("chexpert", chexpert, 5), ("chestxray14", nih, 5),
                                                ("mura", mura, 1), ("folder", folders, 2),
                                                ("csv", csv_table, 2)])
def test_each_spec_gives_gray_batches_with_its_labels(tmp_path, spec, make, n_labels):
    dls, (x, y) = batch(spec, make(tmp_path))
    assert x.shape == (4, 1, 32, 32) and x.dtype == torch.float32
    assert y.shape == (4, n_labels) and len(dls.vocab) == n_labels


def test_nih_sample_yields_real_normalised_images():
    dls, table = build_dls_from_config(load_data_config("nih-sample"), 64, bs=4)
    x, y = dls.one_batch()
    assert x.shape == (4, 1, 64, 64) and -3 < x.mean() < 3 and x.std() > 0.3
    assert list(dls.vocab) == ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Any finding"]
    xt, yt = dls.test_dl(split_rows(table, "test"), with_labels=True).one_batch()
    assert xt.shape[1:] == (1, 64, 64) and yt.shape[1] == 6


def test_labels_match_the_table():
    dls, _ = build_dls_from_config(load_data_config("nih-sample", ["augment=false"]), 64, bs=8)
    df = dls.valid.dataset.rows
    _, y = dls.valid.one_batch()
    assert torch.equal(y.cpu(), torch.tensor(df[dls.vocab].head(8).to_numpy(), dtype=torch.float32))


def test_u_ignore_keeps_nan_targets(tmp_path):
    dls, (x, y) = batch("chexpert", chexpert(tmp_path, n_train=8, values=[{"Edema": -1.0}] * 8),
                        ["policy=u-ignore", "augment=false"])
    col = list(dls.vocab).index("Edema")
    assert torch.isnan(dls.train.dataset[0][1][col])


def test_same_seed_same_augmented_batch():
    from fastai.torch_core import set_seed

    def first_batch():
        set_seed(3, reproducible=True)
        return build_dls_from_config(load_data_config("nih-sample"), 64, bs=4)[0].one_batch()[0]
    assert torch.equal(first_batch(), first_batch())


def test_corrupt_images_are_skipped_with_a_warning_or_an_error(tmp_path, capsys):
    root = folders(tmp_path)
    (root / "train" / "normal" / "img0.png").write_bytes(b"not an image")
    with pytest.warns(UserWarning, match=r"skipping 1 images that do not decode \(.*img0.png\); the first: "
                                         "UnidentifiedImageError"):
        dls, _ = build_dls_from_config(load_data_config("folder", root=str(root)), 32, bs=4)
    assert len(dls.train_ds) == 11
    with pytest.warns(UserWarning, match="the first: UnidentifiedImageError"):  # found by the check, not in RAM
        build_dls_from_config(load_data_config("folder", ["in_memory=never"], root=str(root)), 32, bs=4)
    with pytest.raises(UsageError, match="1 images do not decode"):
        build_dls_from_config(load_data_config("folder", ["on_bad_image=error"], root=str(root)), 32, bs=4)


def test_missing_images_are_counted(tmp_path):
    root = nih(tmp_path)
    for p in list((root / "images").glob("*.png"))[:5]:
        p.unlink()
    with pytest.raises(UsageError, match="5 listed images do not exist"):
        build_dls_from_config(load_data_config("chestxray14", root=str(root)), 32, bs=4)


def test_cache_is_used_automatically(tmp_path, monkeypatch):
    from medcolor.data.summary import cache

    monkeypatch.setenv("MEDCOLOR_CACHE_DIR", str(tmp_path / "cache"))
    root = chexpert(tmp_path)
    cfg = load_data_config("chexpert", root=str(root))
    assert cache(cfg, 36)["n_images"] == 32
    _, table = build_dls_from_config(cfg, 32, bs=4)
    assert all(p.startswith(str(tmp_path / "cache")) for p in table.df["path"])
    assert not build_dls_from_config(cfg, 40, bs=4)[1].df["path"].str.startswith(str(tmp_path / "cache")).any()


def _jpegs(root, n_per_class=8, size=(500, 600)):
    import numpy as np
    from PIL import Image

    for c, cls in enumerate(("normal", "pneumonia")):
        (root / cls).mkdir(parents=True)
        for i in range(n_per_class):  # full-size JPEGs, gray and RGB mixed
            a = np.random.default_rng(c * 100 + i).integers(0, 256, size[::-1], dtype=np.uint8)
            im = Image.fromarray(a)
            (im.convert("RGB") if i % 2 else im).save(root / cls / f"{i}.jpg")
    return root


def test_a_dataset_smaller_than_one_batch_trains_with_a_warning(tmp_path, capsys):
    from medcolor.cli import main

    root = _jpegs(tmp_path / "xrays")
    args = ["run", "recipe", "demo", "data.spec=folder", f"data.root={root}", "train.epochs=1", "train.image_size=32",
            "--runs-dir", str(tmp_path / "runs"), "--json"]
    assert main(args) == 0  # the demo's bs 32 > 10 training images
    out = capsys.readouterr()
    warnings = [line for line in out.err.splitlines() if line.startswith("warning:")]
    assert [w for w in warnings if "train.bs" in w] == \
        ["warning: only 10 training images, fewer than train.bs=32: using batch size 10"]  # once, not per reader
    assert "Traceback" not in out.err
    run = json.loads(out.out.strip().splitlines()[-1])["run_dir"]
    assert {"best.pth", "metrics.json", "predictions.csv"} <= {p.name for p in Path(run).iterdir()}


def _pngs(root, layout: dict, size=(20, 20)):
    import numpy as np
    from PIL import Image

    for rel, n in layout.items():
        (root / rel).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.random.default_rng(i).integers(0, 256, size[::-1], dtype=np.uint8)).save(
                root / rel / f"{i}.png")
    return root


@pytest.mark.parametrize("layout,match", [
    ({"train/a": 4, "train/b": 4, "valid/a": 3}, "the valid split has images of one class only (a: 3, b: 0)"),
    ({"a": 2, "b": 1}, "the train split has images of one class only (a: 2, b: 0)"),
    ({"train/a": 1, "valid/a": 1, "valid/b": 1}, "the train split has images of one class only (a: 1, b: 0)"),
])
def test_degenerate_splits_are_one_line_errors_before_a_run_folder(tmp_path, capsys, layout, match):
    from medcolor.cli import main

    root = _pngs(tmp_path / "xrays", layout)
    runs = tmp_path / "runs"
    assert main(["run", "recipe", "demo", "data.spec=folder", f"data.root={root}", "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {match}; a classifier needs at least two classes in train and in valid\n"
    assert not runs.exists()


def test_images_smaller_than_the_crop_are_upscaled(tmp_path):
    root = _pngs(tmp_path / "xrays", {"a": 6, "b": 6}, size=(12, 9))
    x, _ = batch("folder", root, size=64)[1]
    assert x.shape == (4, 1, 64, 64)


def test_aecnn_validation_resizes_the_whole_image_instead_of_cropping(tmp_path):
    """Stage 1 trains on random 224 crops of 256-resized images and validates on the 256-resized images (source)."""
    import numpy as np
    from PIL import Image

    root = nih(tmp_path, n=40, size=64)
    cfg = load_data_config("chestxray14", ["resize_to=64", "valid_resize=48", "augment=false", "mean=0", "std=1"],
                           root=str(root))
    dls, _ = build_dls_from_config(cfg, 32, bs=4)
    assert dls.one_batch()[0].shape[-2:] == (32, 32)  # random crops in training
    xv, _ = dls.valid.one_batch()
    assert xv.shape[-2:] == (48, 48)
    first = Image.open(dls.valid.dataset.rows["path"].iloc[0]).convert("L").resize((48, 48), Image.BILINEAR)
    assert np.abs(xv[0, 0].cpu().numpy() * 255 - np.asarray(first, dtype=np.float32)).mean() < 8  # whole image


def test_pad_to_centres_the_normalised_image_and_pads_with_zero(tmp_path):
    """data.pad_to: a 28 px MedMNIST image padded to 224 sits at rows / columns 98..125, its pixels as normalised,
    and every other pixel is 0 - the protocol's Pad(fill=0) after Normalize; model.json records it."""
    import numpy as np

    from fixtures import write_npz
    from medcolor.data.medmnist import read_image
    from medcolor.training.recipes import load_recipe
    from medcolor.training.runs import spec_for

    write_npz(tmp_path, "breastmnist")
    recipe = load_recipe("medmnistplus-linear-probe", [f"data.root={tmp_path}", "data.name=breastmnist"])
    dls = medcolor.build_dls(recipe)
    x = dls.valid.one_batch()[0][:1].float().cpu()
    assert x.shape == (1, 3, 224, 224)
    raw = read_image(dls.valid.dataset.paths[0]).astype(np.float32) / 255
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])  # as_rgb: ImageNet's, per channel
    inside = x[0, :, 98:126, 98:126].numpy()
    assert np.allclose(inside, (raw[None] - mean[:, None, None]) / std[:, None, None], atol=1e-5)
    outside = x[0].clone()
    outside[:, 98:126, 98:126] = 0
    assert float(outside.abs().max()) == 0.0
    assert spec_for(recipe, list(dls.vocab), True).input.pad == 224
