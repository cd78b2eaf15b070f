"""`medcolor interpret`: fastai-style interpretation made useful for multi-label data.

fastai's ClassificationInterpretation assumes one label per image, and its loss-based top losses need a
loss with reduction='none'; both are done here by hand over the same get_preds output.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..core import runfolder
from ..tasks.classification import colorizer_figure, shown_input
from ..data.images import image_name
from ..core.errors import UsageError
from ..core.io import warn, write_csv, write_json
from ..tasks.metrics import per_label
from ..core.plots import plot_confusions, plot_gallery
from ..training.runs import load_model, model_title, require_classifier


def per_image_loss(probs: np.ndarray, targets: np.ndarray, single_label: bool = False) -> np.ndarray:
    """Each image's loss as training measured it: cross-entropy of its class (single-label), else the mean binary
    cross-entropy over its known labels."""
    p = np.clip(probs, 1e-7, 1 - 1e-7)
    if single_label:
        return -np.log((p * np.nan_to_num(targets)).sum(1))
    bce = -(targets * np.log(p) + (1 - targets) * np.log(1 - p))
    return np.nanmean(np.where(np.isnan(targets), np.nan, bce), axis=1)


LOSS_NAMES = {False: "mean BCE over labels", True: "cross-entropy"}


def confusion(probs, targets, labels, thresholds) -> dict[str, list[list[int]]]:
    from sklearn.metrics import confusion_matrix

    return {label: confusion_matrix(t.astype(int), (p >= thresholds[label]).astype(int), labels=[0, 1]).tolist()
            for _, label, t, p in per_label(probs, targets, labels, both_classes=False)}


def top_losses(path: Path, rows: pd.DataFrame, probs, targets, losses, labels, k: int, what: str = "",
               channels: int = 1, single_label: bool = False) -> pd.DataFrame:
    """The k images with the highest loss: a figure (true labels, two most probable; each image decoded as the
    model reads it, gray or RGB) and their table."""
    from ..data.images import open_image

    top = np.argsort(-losses)[:k]
    titles, table = [], []
    for idx in top:
        true = [lab for j, lab in enumerate(labels) if targets[idx, j] == 1] or ["none"]
        best = sorted(zip(labels, probs[idx]), key=lambda t: -t[1])[:2]
        titles.append(f"loss {losses[idx]:.2f}\ntrue: {', '.join(true)}\n" + ", ".join(f"{lab} {p:.2f}" for lab, p in best))
        table.append({"path": rows["path"].iloc[idx], "loss": float(losses[idx]),
                      **{f"{lab}": targets[idx, j] for j, lab in enumerate(labels)},
                      **{col: float(probs[idx, j]) for j, col in enumerate(runfolder.prob_columns(labels))}})
    plot_gallery(path, [np.asarray(open_image(rows["path"].iloc[i], channels)) for i in top], titles,
                 title=f"{what}: the {len(top)} images with the highest loss ({LOSS_NAMES[single_label]}, raw "
                       f"probabilities)")
    return pd.DataFrame(table)


def gradcam_figures(learn, out: Path, groups: list[tuple[str, str, list[str]]], labels: list[str],
                    outputs: list[int], what: str, layer: str | None = None):
    """Grad-CAM per label (model output `outputs[j]` for `labels[j]`) for each group of images (file name, which
    images, paths), on `layer` or the layer `cam_layer` picks for the input size; `what`: the run and data, for
    the titles. Returns (figures written, layer used)."""
    from ..nets.colorizers import has_colorizer
    from ..nets.gradcam import cam_layer, colorized, grad_cam, has_feature_map
    from ..core.plots import plot_gradcam

    if not has_feature_map(learn.model):
        warn("no Grad-CAM: this model does not expose a backbone feature map")
        return [], None
    written, ensemble = [], hasattr(learn.model, "members")
    for name, which, paths in groups:
        xb = learn.dls.test_dl(pd.DataFrame({"path": paths}), with_labels=False, bs=len(paths)).one_batch()[0]
        layer = cam_layer(learn.model, xb.shape[-1], layer)
        cams = {lab: grad_cam(learn.model, xb, j, layer).cpu().numpy() for lab, j in zip(labels, outputs)}
        images = shown_input(learn.dls, xb).permute(0, 2, 3, 1).squeeze(-1).numpy()
        plot_gradcam(out / name, images, colorized(learn.model, xb) if has_colorizer(learn.model) else None, cams,
                     [image_name(p) for p in paths],
                     title=f"{what}\n{which}: Grad-CAM on {layer or 'the last feature map'} of the backbone" +
                           (f", the mean of the {len(learn.model.members)} members' maps" if ensemble else "") +
                           " (red: where the evidence for the label is strongest)")
        written.append(name)
    return written, layer or "last feature map"


def interpret_run(run_dir: str | Path, split: str | None = None, top_k: int = 9, threshold: float | None = None,
                  data=None, images: list[str] | None = None, layer: str | None = None) -> dict:
    """Top losses, confusion matrices at the run's operating thresholds (on calibrated probabilities, as predict
    decides), the colorizer gallery and Grad-CAM - on a split of the run's own data, on another dataset (`data`),
    or on given image files (no labels: only the gallery and Grad-CAM)."""
    from .evaluate import image_files, labelled_images, scored_predictions

    if top_k < 1:
        raise UsageError(f"--top-losses must be at least 1, got {top_k}")

    spec, learn = load_model(run_dir)
    require_classifier(spec, run_dir, "interpret")
    if images:
        return _interpret_images(run_dir, learn, spec, image_files(images), layer)
    li = labelled_images(run_dir, spec, data, split)
    cal = runfolder.read_calibration(run_dir)
    probs, calibrated = scored_predictions(learn, spec, li, cal)
    labels, targets, rows = li.labels, li.targets, li.rows
    decided, thresholds = operating_thresholds(probs, calibrated, cal, labels, threshold)
    title = model_title(run_dir)
    with runfolder.result_dir(run_dir, f"{runfolder.INTERPRET_PREFIX}{li.folder}") as out:
        losses = per_image_loss(probs, targets, spec.single_label)
        top = top_losses(out / runfolder.TOP_LOSSES_PLOT, rows, probs, targets, losses, labels, min(top_k, len(rows)),
                         f"{title}\n{li.source}", spec.input.channels, spec.single_label)
        write_csv(out / runfolder.TOP_LOSSES, top)
        matrices = confusion(decided, targets, labels, thresholds)
        scale = "calibrated probabilities (predict's decisions)" if decided is calibrated else "raw probabilities"
        plot_confusions(out / runfolder.CONFUSION_PLOT, matrices, thresholds,
                        title=f"{title}\n{li.source} ({len(rows)} images): thresholds on {scale}")
        xb = learn.dls.test_dl(rows.head(8), with_labels=False).one_batch()[0]
        colorizer_figure(out / runfolder.COLORIZER_GALLERY, learn, xb,
                         f"{title}\n{li.source}: the first {min(8, len(rows))} images")
        outputs = [list(spec.labels).index(lab) for lab in labels]
        groups = [(runfolder.GRADCAM_TOP_LOSSES, "the images with the highest loss", list(top["path"])),
                  (runfolder.GRADCAM_GALLERY, f"the first {min(8, len(rows))} images", list(rows["path"][:8]))]
        figures, used = gradcam_figures(learn, out, groups, labels, outputs, f"{title}\n{li.source}", layer)
        result = {"out_dir": str(out), "split": li.split, "data": li.source, "thresholds": thresholds,
                  "threshold_scale": "calibrated" if calibrated is not None and threshold is None else "raw",
                  "confusion": matrices, "top_losses": top[["path", "loss"]].to_dict("records"), "gradcam": figures,
                  "gradcam_layer": used,
                  "files": [runfolder.TOP_LOSSES_PLOT, runfolder.TOP_LOSSES, runfolder.CONFUSION_PLOT, runfolder.COLORIZER_GALLERY, *figures,
                            runfolder.INTERPRETATION]}
        write_json(out / runfolder.INTERPRETATION, result)
        return result


def operating_thresholds(probs, calibrated, cal: dict | None, labels: list[str], fixed: float | None):
    """(probabilities to threshold, threshold per label): a fixed --threshold on raw probabilities, else the run's
    thresholds on calibrated ones (predict's decisions), else 0.5 on raw ones with a warning."""
    if fixed is not None:
        return probs, {lab: fixed for lab in labels}
    if cal is None:
        warn("the run has no calibration.json: confusion matrices at 0.5 on raw probabilities (`medcolor calibrate`)")
        return probs, {lab: 0.5 for lab in labels}
    return calibrated, {lab: cal["thresholds"][lab] for lab in labels}


def _interpret_images(run_dir, learn, spec, paths: list[str], layer: str | None = None) -> dict:
    """Unlabelled images: the colorizer gallery and Grad-CAM of the first eight (no losses without labels)."""
    shown, labels = paths[:8], list(spec.labels)
    xb = learn.dls.test_dl(pd.DataFrame({"path": shown}), with_labels=False, bs=len(shown)).one_batch()[0]
    which = f"{len(shown)} given image{'s' * (len(shown) > 1)}"
    with runfolder.result_dir(run_dir, runfolder.INTERPRET_IMAGES) as out:
        colorizer_figure(out / runfolder.COLORIZER_GALLERY, learn, xb, f"{model_title(run_dir)}\n{which}")
        figures, used = gradcam_figures(learn, out, [(runfolder.GRADCAM_GALLERY, which, shown)], labels,
                                        list(range(len(labels))), model_title(run_dir), layer)
        result = {"out_dir": str(out), "split": "images", "data": f"{len(paths)} given images", "gradcam": figures,
                  "gradcam_layer": used,
                  "files": [runfolder.COLORIZER_GALLERY, *figures, runfolder.INTERPRETATION]}
        write_json(out / runfolder.INTERPRETATION, result)
        return result
