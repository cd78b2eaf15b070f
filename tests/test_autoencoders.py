import json

import torch

from medcolor.nets.autoencoders import AECNNFrontEnd, keras_param_count
from medcolor.cli import main


def test_model_summary_counts_the_keras_way(capsys):
    for arch, expected in (("ae-small", 2_263_232), ("ae-big", 6_104_256)):
        assert main(["model", "summary", "--model", arch, "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["total_params_keras"] == expected and out["output_shape"] == [1, 1, 256, 256]


def test_aecnn_summary_has_keras_count(capsys):
    assert main(["model", "summary", "--model", "aecnn", "--image-size", "128", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["output_shape"] == [1, 14] and out["total_params_keras"] > out["total_params"]


def test_aecnn_front_end_shapes():
    f = AECNNFrontEnd()
    z = f(torch.rand(2, 1, 64, 64))
    assert z.shape == (2, 3, 16, 16) and f.reconstruction.shape == (2, 1, 64, 64)
    assert f.reconstruction.min() >= 0 and f.reconstruction.max() <= 1
    assert keras_param_count(f) == (32 * 25 + 32) + (32 + 1) + (16 * 9 + 16)


def test_aecnn_stages_1_2_3_chain_and_log_both_losses(tmp_path, capsys):
    from pathlib import Path

    import pandas as pd
    from fixtures import nih

    root = nih(tmp_path, n=40, size=128)
    tiny = [f"data.root={root}", "model.pretrained=false", "train.epochs=1", "train.bs=4", "data.resize_to=128",
            "data.valid_resize=128",
            "train.image_size=128"]
    runs = tmp_path / "runs"
    assert main(["run", "recipe", "nih14-aecnn-stage3", *tiny, "--runs-dir", str(runs), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(result["auc"]) == 14
    for stage in ("nih14-aecnn-stage1", "nih14-aecnn-stage2"):  # trained first, because stage 3 starts from them
        assert len(list((runs / stage).iterdir())) == 1
    stage2 = next((runs / "nih14-aecnn-stage2").iterdir())
    assert {"psnr", "ssim"} <= set(pd.read_csv(stage2 / "history.csv").columns)
    history = pd.read_csv(Path(result["run_dir"]) / "history.csv")
    assert {"train_bce", "train_mse", "valid_bce", "valid_mse"} <= set(history.columns)
    assert (history[["train_bce", "train_mse"]] > 0).all().all()
    best = torch.load(Path(result["run_dir"]) / "best.pth", weights_only=True)
    assert "colorizer.encoder.0.weight" in best and "backbone.classifier.weight" in best


def test_resnet50_autoencoder_takes_and_returns_three_channels():
    from medcolor.core.config import ModelConfig
    from medcolor.nets.models import build_model
    from medcolor.tasks.reconstruction import mse_loss, per_image_psnr

    model = build_model(ModelConfig(arch="ae-resnet50", backbone="resnet50"), n_out=1).eval()
    assert model.encoder.conv1.in_channels == 3 and model.decoder[-1].out_channels == 3  # as the source (seed 002)
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 3, 64, 64)
    assert torch.allclose(mse_loss(y, x), ((y - x) ** 2).mean())  # each channel against the gray target
    assert per_image_psnr(x.expand(-1, 3, -1, -1), x).isinf().all()
