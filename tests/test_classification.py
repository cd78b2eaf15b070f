"""The classification task's figures say what they show."""
from types import SimpleNamespace

import torch

import medcolor.tasks.classification as classification
from medcolor.core.config import ModelConfig
from medcolor.data.block import normalisation
from medcolor.data.items import Fit, GrayTensor, inference_dataloaders
from medcolor.nets.models import build_model


def test_the_colorizer_figure_of_a_run_without_a_colorizer_says_so(real_batch, monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(classification, "plot_colorizer", lambda path, x, rgb, title: calls.append((x, rgb, title)))
    dls = inference_dataloaders(Fit(64, True, None), list("abcde"), False, normalisation(0.5028, 0.2902), 4, None)
    xb = GrayTensor(real_batch[0][:4])  # typed as the DataLoaders' batches are, so fastai decodes them
    for colorizer in ("none", "conv1x1"):
        model = build_model(ModelConfig(backbone="test_efficientnet", colorizer=colorizer), n_out=5)
        learn = SimpleNamespace(model=model, dls=dls)
        classification.colorizer_figure(tmp_path / "c.png", learn, xb, "run x: 4 images")
    (shown, none_rgb, none_title), (_, rgb, title) = calls
    assert none_rgb is None and none_title.startswith("run x: 4 images\nno colorizer")  # names the run
    assert title.startswith("run x: 4 images\n")
    assert isinstance(rgb, torch.Tensor) and rgb.shape == (4, 3, 64, 64) and "colorizer makes" in title
    pixels = real_batch[0][:4] * 0.2902 + 0.5028  # the file's gray levels in [0, 1], normalisation undone
    assert shown.shape == (4, 1, 64, 64) and (shown - pixels).abs().max() < 1 / 255 + 1e-6


def test_the_loss_plot_has_whole_epochs_and_a_legend_clear_of_the_points(monkeypatch, tmp_path):
    import medcolor.core.plots as plots

    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figures.append(fig))
    rows = [{"epoch": e, "train_loss": 1 - e / 10, "valid_loss": 1.1 - e / 10, "mean_auc": 0.5 + e / 20} for e in range(3)]
    plots.plot_history(tmp_path / "loss.png", rows, title="demo: efficientnet_lite0 + coloru colorizer, mode 1, seed 0")
    ax = figures[0].axes[0]
    assert ax.get_title().endswith("seed 0")
    assert all(float(t).is_integer() for t in ax.get_xticks())
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["train_loss", "valid_loss", "mean_auc (valid)"]
    assert legend.get_bbox_to_anchor()._bbox.y0 < 0  # below the axes


def test_the_loss_plot_marks_the_best_epoch_and_never_zooms_a_tiny_score_change_to_full_height(monkeypatch,
                                                                                                tmp_path):
    import medcolor.core.plots as plots

    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figures.append(fig))
    rows = [{"epoch": e, "train_loss": 0.5, "valid_loss": 0.4, "mean_auc": 0.6500 + 0.0007 * (e == 2)}
            for e in range(4)]
    plots.plot_history(tmp_path / "loss.png", rows, best_epoch=2, best_by="mean_auc")
    loss_axes, score_axes = figures[0].axes
    low, high = score_axes.get_ylim()
    assert high - low >= plots.SCORE_SPAN - 1e-9 and low < 0.65 < 0.6507 < high
    assert "best.pth (epoch 2, by mean_auc)" in [t.get_text() for t in loss_axes.get_legend().get_texts()]


def test_a_model_that_predicts_one_class_for_every_image_is_said_so_beside_its_acc():
    """A MedMNIST linear probe after one epoch called every test image pneumonia: ACC 0.625 = the class share, and
    the console showed only the AUC."""
    import numpy as np
    import pandas as pd

    from medcolor.results.evaluate import format_scores

    targets = np.eye(2)[[0, 1, 1, 1, 0, 1, 1, 1]]
    probs = np.column_stack([np.linspace(0.1, 0.4, 8), 1 - np.linspace(0.1, 0.4, 8)])  # always "pneumonia"
    rows = pd.DataFrame({"path": [f"{i}.png" for i in range(8)], "group": range(8)})
    r = classification.scores(probs, targets, rows, ["normal", "pneumonia"], "medmnist", single_label=True)
    assert r["constant_prediction"] == "pneumonia" and r["acc"] == 0.75
    line = classification.summary_line(r)
    assert line.startswith("mean AUC ") and "ACC 0.7500 - every image predicted pneumonia" in line
    shown = format_scores({**r, "ece": {}, "data": "x", "files": [], "out_dir": "."})
    assert "every image predicted pneumonia" in shown
    mixed = classification.scores(probs[::-1] * [[1, 1]] + [[0.5, -0.5]] * (np.arange(8)[:, None] % 2),
                                  targets, rows, ["normal", "pneumonia"], "medmnist", single_label=True)
    assert "constant_prediction" not in mixed and "every image" not in classification.summary_line(mixed)
