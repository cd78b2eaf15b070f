"""`medcolor interpret`: fastai-style interpretation made useful for multi-label data.

fastai's ClassificationInterpretation assumes one label per image, and its loss-based top losses need a
loss with reduction='none'; both are done here by hand over the same get_preds output.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .evaluate import plot_colorizer, predict_split, save_figure, write_csv


def per_image_loss(probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Mean binary cross-entropy over each image's known labels."""
    p = np.clip(probs, 1e-7, 1 - 1e-7)
    bce = -(targets * np.log(p) + (1 - targets) * np.log(1 - p))
    return np.nanmean(np.where(np.isnan(targets), np.nan, bce), axis=1)


def youden_thresholds(probs: np.ndarray, targets: np.ndarray, labels: list[str]) -> dict[str, float]:
    """Per label, the threshold that maximises sensitivity + specificity - 1 (Youden's J)."""
    from sklearn.metrics import roc_curve

    out = {}
    for i, label in enumerate(labels):
        keep = ~np.isnan(targets[:, i])
        t, p = targets[keep, i], probs[keep, i]
        if len(np.unique(t)) < 2:
            out[label] = 0.5
            continue
        fpr, tpr, thr = roc_curve(t, p)
        out[label] = float(min(thr[int(np.argmax(tpr - fpr))], 1.0))
    return out


def confusion(probs, targets, labels, thresholds) -> dict[str, list[list[int]]]:
    from sklearn.metrics import confusion_matrix

    out = {}
    for i, label in enumerate(labels):
        keep = ~np.isnan(targets[:, i])
        out[label] = confusion_matrix(targets[keep, i].astype(int), (probs[keep, i] >= thresholds[label]).astype(int),
                                      labels=[0, 1]).tolist()
    return out


def plot_confusions(path: Path, matrices: dict, thresholds: dict) -> None:
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    n = len(matrices)
    fig, axes = plt.subplots(1, n, figsize=(2.8 * n, 3), squeeze=False)
    for ax, (label, cm) in zip(axes[0], matrices.items()):
        ConfusionMatrixDisplay(np.array(cm), display_labels=["neg", "pos"]).plot(ax=ax, colorbar=False)
        ax.set_title(f"{label}\nthreshold {thresholds[label]:.2f}", fontsize=8)
        if ax is not axes[0][0]:
            ax.set_ylabel("")
    save_figure(fig, path)


def plot_top_losses(path: Path, rows: pd.DataFrame, probs, targets, losses, labels, k: int) -> pd.DataFrame:
    import matplotlib.pyplot as plt
    from .data.images import open_gray

    top = np.argsort(-losses)[:k]
    cols = min(4, k)
    fig, axes = plt.subplots((k + cols - 1) // cols, cols, figsize=(3.2 * cols, 3.6 * ((k + cols - 1) // cols)),
                             squeeze=False)
    table = []
    for ax, idx in zip(axes.flat, top):
        true = [lab for j, lab in enumerate(labels) if targets[idx, j] == 1] or ["none"]
        best = sorted(zip(labels, probs[idx]), key=lambda t: -t[1])[:2]
        ax.imshow(np.asarray(open_gray(rows["path"].iloc[idx])), cmap="gray")
        ax.set_title(f"loss {losses[idx]:.2f}\ntrue: {', '.join(true)}\n"
                     + ", ".join(f"{lab} {p:.2f}" for lab, p in best), fontsize=7)
        table.append({"path": rows["path"].iloc[idx], "loss": float(losses[idx]),
                      **{f"{lab}": targets[idx, j] for j, lab in enumerate(labels)},
                      **{f"p_{lab}": float(probs[idx, j]) for j, lab in enumerate(labels)}})
    for ax in axes.flat:
        ax.axis("off")
    save_figure(fig, path)
    return pd.DataFrame(table)


def interpret_run(run_dir: str | Path, split: str = "valid", top_k: int = 9, threshold: float | None = None) -> dict:
    from .runs import new_subdir, write_json
    from .train import load_run

    _, learn = load_run(run_dir)
    labels = list(learn.dls.vocab)
    probs, targets, rows = predict_split(learn, split)
    vp, vt, _ = (probs, targets, rows) if split == "valid" else predict_split(learn, "valid")
    thresholds = {lab: threshold for lab in labels} if threshold is not None else youden_thresholds(vp, vt, labels)
    out = new_subdir(Path(run_dir), f"interpret-{split}")
    losses = per_image_loss(probs, targets)
    top = plot_top_losses(out / "top_losses.png", rows, probs, targets, losses, labels, min(top_k, len(rows)))
    write_csv(out / "top_losses.csv", top)
    matrices = confusion(probs, targets, labels, thresholds)
    plot_confusions(out / "confusion.png", matrices, thresholds)
    xb = learn.dls.test_dl(rows.head(8), with_labels=True).one_batch()[0]
    plot_colorizer(out / "colorizer_gallery.png", learn.model, xb, n=8)
    result = {"out_dir": str(out), "split": split, "thresholds": thresholds, "confusion": matrices,
              "top_losses": top[["path", "loss"]].to_dict("records")}
    write_json(out / "interpretation.json", result)
    return result
