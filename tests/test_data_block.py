import pytest
import torch

from medcolor.data import load_data_config
from medcolor.data.block import build_dls_from_config, split_dl
from medcolor.errors import UsageError

from fixtures import chexpert, csv_table, folders, mura, nih


def batch(spec, root=None, overrides=(), size=32):
    dls = build_dls_from_config(load_data_config(spec, list(overrides), root=root and str(root)), size, bs=4)
    return dls, dls.one_batch()


@pytest.mark.parametrize("spec,make,n_labels", [("chexpert", chexpert, 5), ("chestxray14", nih, 5),
                                                ("mura", mura, 1), ("folder", folders, 2),
                                                ("csv", csv_table, 2)])
def test_each_spec_gives_gray_batches_with_its_labels(tmp_path, spec, make, n_labels):
    dls, (x, y) = batch(spec, make(tmp_path))
    assert x.shape == (4, 1, 32, 32) and x.dtype == torch.float32
    assert y.shape == (4, n_labels) and len(dls.vocab) == n_labels


def test_nih_sample_yields_real_normalised_images():
    dls, (x, y) = batch("nih-sample", size=64)
    assert x.shape == (4, 1, 64, 64) and -3 < x.mean() < 3 and x.std() > 0.3
    assert list(dls.vocab) == ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Any finding"]
    xt, yt = split_dl(dls, "test").one_batch()
    assert xt.shape[1:] == (1, 64, 64) and yt.shape[1] == 6


def test_labels_match_the_table():
    dls = build_dls_from_config(load_data_config("nih-sample", ["augment=false"]), 64, bs=8)
    df = dls.valid.items
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
        return build_dls_from_config(load_data_config("nih-sample"), 64, bs=4).one_batch()[0]
    assert torch.equal(first_batch(), first_batch())


def test_corrupt_images_are_skipped_with_a_warning_or_an_error(tmp_path, capsys):
    root = folders(tmp_path)
    (root / "train" / "normal" / "img0.png").write_bytes(b"not an image")
    dls = build_dls_from_config(load_data_config("folder", root=str(root)), 32, bs=4)
    assert len(dls.train_ds) == 11 and "skipping 1 images that do not decode" in capsys.readouterr().err
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
    dls = build_dls_from_config(cfg, 32, bs=4)
    assert all(p.startswith(str(tmp_path / "cache")) for p in dls.table.df["path"])
    assert not build_dls_from_config(cfg, 40, bs=4).table.df["path"].str.startswith(str(tmp_path / "cache")).any()
