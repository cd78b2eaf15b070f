"""The classification task's figures say what they show."""
from types import SimpleNamespace

import torch

import medcolor.classification as classification
from medcolor.config import ModelConfig
from medcolor.data.block import normalisation
from medcolor.data.items import Fit, GrayTensor, inference_dataloaders
from medcolor.models import build_model


def test_the_colorizer_figure_of_a_run_without_a_colorizer_says_so(real_batch, monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(classification, "plot_colorizer", lambda path, x, rgb, title: calls.append((x, rgb, title)))
    dls = inference_dataloaders(Fit(64, True, None), list("abcde"), False, normalisation(0.5028, 0.2902), 4, None)
    xb = GrayTensor(real_batch[0][:4])  # typed as the DataLoaders' batches are, so fastai decodes them
    for colorizer in ("none", "conv1x1"):
        model = build_model(ModelConfig(backbone="test_efficientnet", colorizer=colorizer), n_out=5)
        classification.colorizer_figure(tmp_path / "c.png", SimpleNamespace(model=model, dls=dls), xb)
    (shown, none_rgb, none_title), (_, rgb, title) = calls
    assert none_rgb is None and none_title.startswith("no colorizer")
    assert isinstance(rgb, torch.Tensor) and rgb.shape == (4, 3, 64, 64) and "colorizer makes" in title
    pixels = real_batch[0][:4] * 0.2902 + 0.5028  # the file's gray levels in [0, 1], normalisation undone
    assert shown.shape == (4, 1, 64, 64) and (shown - pixels).abs().max() < 1 / 255 + 1e-6


def test_the_loss_plot_has_whole_epochs_and_a_legend_clear_of_the_points(monkeypatch, tmp_path):
    import medcolor.plots as plots

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
