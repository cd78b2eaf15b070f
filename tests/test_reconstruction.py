import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from medcolor.cli import main
from medcolor.data import load_data_config, read_table
from medcolor.tasks.reconstruction import per_image_psnr

from fixtures import ixi

IXI_TINY = ["data.slices=5:15", "train.image_size=32", "train.bs=8", "train.epochs=1"]


def test_ixi_slices_and_stratified_subject_split(tmp_path):
    root = ixi(tmp_path)
    t = read_table(load_data_config("ixi", ["slices=5:15", "valid_pct=0.25", "test_pct=0.25"], root=str(root)))
    assert len(t.df) == 8 * 10 and set(t.df["slice"]) == set(range(5, 15))
    by_subject = t.df.groupby("group")["split"].nunique()
    assert (by_subject == 1).all()  # no subject in two splits
    counts = t.df.drop_duplicates("group")["split"].value_counts()
    assert counts.to_dict() == {"train": 4, "valid": 2, "test": 2}
    sexes = pd.read_csv(root / "IXI.csv").set_index("IXI_ID")["SEX_ID (1=m, 2=f)"]
    for split in ("valid", "test"):  # stratified: one of each sex in each held-out split
        ids = [int(g[3:]) for g in t.split(split)["group"].unique()]
        assert sorted(sexes[ids]) == [1, 2]


def test_slice_range_beyond_a_volume_exits_2_naming_file_and_depth(tmp_path, capsys):
    root = ixi(tmp_path)
    assert main(["data", "summary", "ixi", "--root", str(root), "slices=5:40"]) == 2
    err = capsys.readouterr().err
    assert "IXI012-HH-1200-T1.nii.gz, which has 20 slices" in err and err.count("\n") == 1


def test_train_ixi_ae_small_mse_for_one_epoch(tmp_path, capsys):
    root = ixi(tmp_path)
    assert main(["run", "recipe", "ixi-ae-small-mse", f"data.root={root}", *IXI_TINY,
                 "--runs-dir", str(tmp_path / "runs"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result["psnr"]) == {"mean", "std", "min", "max"} and 0 < result["ssim"]["mean"] <= 1
    run = Path(result["run_dir"])
    preds = pd.read_csv(run / "predictions.csv")
    assert {"psnr", "ssim", "slice"} <= set(preds.columns) and preds["psnr"].mean() == pytest.approx(result["psnr"]["mean"])
    assert (run / "plots" / "reconstructions.png").is_file()
    assert {"psnr", "ssim", "valid_loss"} <= set(pd.read_csv(run / "history.csv").columns)
    assert main(["report", str(run.parent), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["psnr_mean"] == pytest.approx(result["psnr"]["mean"])


def test_psnr_is_per_image():
    y = torch.rand(3, 1, 16, 16)
    p = y.clone()
    p[0] += 0.1
    values = per_image_psnr(p.clamp(0, 1), y)
    assert values.shape == (3,) and torch.isinf(values[1:]).all() or values[1] > 60
