"""`medcolor interpret`: fastai-style interpretation made useful for multi-label data.

fastai's ClassificationInterpretation assumes one label per image, and its loss-based top losses need a
loss with reduction='none'; both are done here by hand over the same get_preds output.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .calibration import choose_thresholds
from .classification import colorizer_figure, predict_split
from .errors import UsageError
from .io import claim_new, warn, write_csv, write_json
from .metrics import per_label
from .plots import plot_confusions, plot_gallery
from .runs import load_run
from .tasks import task_of


def per_image_loss(probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Mean binary cross-entropy over each image's known labels."""
    p = np.clip(probs, 1e-7, 1 - 1e-7)
    bce = -(targets * np.log(p) + (1 - targets) * np.log(1 - p))
    return np.nanmean(np.where(np.isnan(targets), np.nan, bce), axis=1)


def confusion(probs, targets, labels, thresholds) -> dict[str, list[list[int]]]:
    from sklearn.metrics import confusion_matrix

    return {label: confusion_matrix(t.astype(int), (p >= thresholds[label]).astype(int), labels=[0, 1]).tolist()
            for _, label, t, p in per_label(probs, targets, labels, both_classes=False)}


def top_losses(path: Path, rows: pd.DataFrame, probs, targets, losses, labels, k: int) -> pd.DataFrame:
    """The k images with the highest loss: a figure (true labels, two most probable) and their table."""
    from .data.images import open_gray

    top = np.argsort(-losses)[:k]
    titles, table = [], []
    for idx in top:
        true = [lab for j, lab in enumerate(labels) if targets[idx, j] == 1] or ["none"]
        best = sorted(zip(labels, probs[idx]), key=lambda t: -t[1])[:2]
        titles.append(f"loss {losses[idx]:.2f}\ntrue: {', '.join(true)}\n" + ", ".join(f"{lab} {p:.2f}" for lab, p in best))
        table.append({"path": rows["path"].iloc[idx], "loss": float(losses[idx]),
                      **{f"{lab}": targets[idx, j] for j, lab in enumerate(labels)},
                      **{f"p_{lab}": float(probs[idx, j]) for j, lab in enumerate(labels)}})
    plot_gallery(path, [np.asarray(open_gray(rows["path"].iloc[i])) for i in top], titles)
    return pd.DataFrame(table)


def gradcam_figures(learn, out: Path, rows: pd.DataFrame, top: pd.DataFrame, labels: list[str]) -> list[str]:
    """Grad-CAM per label for the top-loss images and the fixed gallery (the first 8 images of the split)."""
    from .gradcam import colorized, grad_cam, has_feature_map
    from .plots import plot_gradcam

    if not has_feature_map(learn.model):
        warn("no Grad-CAM: this model does not expose a backbone feature map")
        return []
    written = []
    for name, paths in (("gradcam_top_losses.png", list(top["path"])), ("gradcam_gallery.png", list(rows["path"][:8]))):
        xb = learn.dls.test_dl(pd.DataFrame({"path": paths}), with_labels=False, bs=len(paths)).one_batch()[0]
        cams = {lab: grad_cam(learn.model, xb, j).cpu().numpy() for j, lab in enumerate(labels)}
        images = xb[:, 0].float().cpu().numpy()
        plot_gradcam(out / name, images, colorized(learn.model, xb), cams, [Path(p).name for p in paths])
        written.append(name)
    return written


def interpret_run(run_dir: str | Path, split: str = "valid", top_k: int = 9, threshold: float | None = None) -> dict:
    recipe, learn = load_run(run_dir)
    if not task_of(recipe).predicts_labels:
        raise UsageError(f"{run_dir} is a {recipe.task} run; interpret explains classifiers")
    labels = list(learn.dls.vocab)
    probs, targets, rows = predict_split(learn, split)
    vp, vt, _ = (probs, targets, rows) if split == "valid" else predict_split(learn, "valid")
    thresholds = {lab: threshold for lab in labels} if threshold is not None else choose_thresholds(vp, vt, labels)
    out = claim_new(Path(run_dir) / f"interpret-{split}", is_dir=True)
    losses = per_image_loss(probs, targets)
    top = top_losses(out / "top_losses.png", rows, probs, targets, losses, labels, min(top_k, len(rows)))
    write_csv(out / "top_losses.csv", top)
    matrices = confusion(probs, targets, labels, thresholds)
    plot_confusions(out / "confusion.png", matrices, thresholds)
    xb = learn.dls.test_dl(rows.head(8), with_labels=True).one_batch()[0]
    colorizer_figure(out / "colorizer_gallery.png", learn.model, xb)
    figures = gradcam_figures(learn, out, rows, top, labels)
    result = {"out_dir": str(out), "split": split, "thresholds": thresholds, "confusion": matrices,
              "top_losses": top[["path", "loss"]].to_dict("records"), "gradcam": figures}
    write_json(out / "interpretation.json", result)
    return result
