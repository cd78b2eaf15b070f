"""The classification task: multi-label (masked BCE) or single-label (cross-entropy) labels, per-label AUC,
predictions.csv, ROC and colorizer figures."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import calibration
from . import losses
from ..core import runfolder
from ..core.config import Recipe
from ..core.archs import run_title
from .metrics import accuracy, auc_metrics, group_auc, label_aucs, mean_auc, mean_of, roc_inputs
from ..core.plots import plot_colorizer, plot_roc
from .stats import auc_intervals

METRICS = ("auc",)


def build_dls(recipe: Recipe, num_workers: int, device=None):
    from ..data.block import build_dls_from_config

    t = recipe.train
    return build_dls_from_config(recipe.data, t.image_size, t.bs, num_workers, device, balanced=t.sampler == "balanced")


def head(recipe: Recipe, dls):
    """(n_out, loss, fastai metrics) for the labels of `dls`; class weights from the training split with
    train.pos_weight: auto."""
    single = dls.valid_ds.single_label
    weights = losses.class_weights(dls.train_ds.targets, single) if recipe.train.pos_weight == "auto" else None
    return len(dls.vocab), losses.loss_for(single, weights), auc_metrics(list(dls.vocab), single)


def class_weighting(recipe: Recipe, learn) -> dict:
    """What metrics.json and the model card say of class imbalance: the sampler and the loss's weights per label."""
    loss = learn.loss_func
    weights = getattr(loss, "pos_weight", getattr(loss, "weight", None))
    return {"sampler": recipe.train.sampler,
            "class_weights": None if weights is None else
            {lab: round(float(w), 6) for lab, w in zip(learn.dls.vocab, weights.tolist())}}


def predict_rows(learn, rows: pd.DataFrame, with_labels: bool = True, tta: int = 0):
    """(probabilities, targets or None) of the model in `learn` for table rows, with the loss function's activation
    and the validation preprocessing; with `tta` > 0, fastai's Learner.tta over that many augmented passes
    (TTA_TRANSFORMS, seeded)."""
    from fastai.torch_core import no_random

    dl = learn.dls.test_dl(rows.reset_index(drop=True), with_labels=with_labels)
    with learn.no_bar():
        if tta:
            with no_random(0):
                probs, targets = learn.tta(dl=dl.new(after_batch=[*dl.after_batch.fs, *tta_transforms()]), n=tta)
        else:
            probs, targets = learn.get_preds(dl=dl)
    return probs.float().numpy(), (targets.float().numpy() if with_labels else None)


TTA_BETA = 0.25  # fastai's default: the result is 0.75 x the mean of the augmented passes + 0.25 x the plain pass


def tta_transforms() -> list:
    """Test-time augmentation safe for radiographs: small rotations and zooms about a random centre (a shift of
    up to 5 % of the side), never a flip - the heart is on the left."""
    from fastai.vision.all import Rotate, Zoom

    return [Rotate(max_deg=5, p=1.0), Zoom(min_zoom=1.0, max_zoom=1.1, p=1.0)]


def tta_description(n: int) -> dict | None:
    """What evaluate / predict write into their output about test-time augmentation."""
    if not n:
        return None
    return {"passes": n, "transforms": ["Rotate(max_deg=5, p=1.0)", "Zoom(min_zoom=1.0, max_zoom=1.1, p=1.0; random "
                                        "centre: shifts up to 5 %)", "random crop along the longer side (non-square "
                                                                      "images, as in training)"],
            "flips": False, "combined": f"fastai Learner.tta: {1 - TTA_BETA:g} x the mean of {n} augmented passes + "
                                        f"{TTA_BETA:g} x the plain pass (seeded)"}


def predict_split(learn, table, split: str):
    """(probabilities, targets, rows) for one split of a table."""
    from ..data.block import split_rows

    rows = split_rows(table, split)
    return (*predict_rows(learn, rows), rows)


def scores(probs, targets, rows: pd.DataFrame, labels: list[str], reader: str, single_label: bool) -> dict:
    """AUC per label and mean, each with a bootstrap 95 % CI that resamples the table's groups (patients), and ACC
    as MedMNIST reports it (arg-max, or 0.5 per label)."""
    aucs = label_aucs(probs, targets, labels)
    ci = auc_intervals(targets, probs, labels, rows["group"].to_numpy())
    out = {"mean_auc": mean_of(aucs), "auc": aucs, "mean_auc_ci95": ci["mean"], "auc_ci95": ci["labels"],
           "acc": accuracy(probs, targets, labels, single_label), "n_images": int(len(rows))}
    if reader == "mura":
        out["study_auc"] = group_auc(probs[:, 0], targets[:, 0], rows["group"])
    chosen = np.unique(np.asarray(probs).argmax(1))
    if single_label and len(chosen) == 1:  # ACC is then the class's share: the AUC alone would not show it
        out["constant_prediction"] = labels[int(chosen[0])]
    return out


def predictions_frame(probs, targets, rows: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    df = pd.DataFrame({"path": rows["path"].to_numpy(), "split": rows["split"].to_numpy(),
                       "group": rows["group"].to_numpy()})
    for i, label in enumerate(labels):
        df[label] = targets[:, i]
        df[f"{runfolder.PROB_PREFIX}{label}"] = probs[:, i]
    return df


def shown_input(dls, xb: torch.Tensor) -> torch.Tensor:
    """A batch as the eye should see it, (n, c, h, w) in [0, 1]: fastai decodes the normalisation, so RGB data
    keeps its colours."""
    return dls.after_batch.decode(xb).float().cpu() / 255


def colorizer_figure(path: Path, learn, xb: torch.Tensor, what: str) -> None:
    """Input vs colorized output for a fixed batch (plots/colorizer.png, interpret's gallery); `what`: the run and
    the images, the title's first line."""
    from ..nets.colorizers import has_colorizer

    model = learn.model.eval()
    shown = shown_input(learn.dls, xb)
    if not has_colorizer(model):
        channels = "gray" if xb.shape[1] == 1 else "RGB"
        title = f"an ensemble of {len(model.members)} networks, each with its own front end (interpret a member " \
                f"to see its colorizer)" if hasattr(model, "members") else \
            f"no colorizer: the {channels} input goes to the backbone as it is"
        plot_colorizer(path, shown, None, title=f"{what}\n{title}")
        return
    with torch.no_grad():
        rgb = model.colorizer(xb).float().cpu()
    if rgb.shape[-2:] != xb.shape[-2:]:  # AECNN's front end compresses: shown at the input's size
        rgb = torch.nn.functional.interpolate(rgb, size=tuple(xb.shape[-2:]), mode="nearest")
    plot_colorizer(path, shown, rgb.expand(-1, 3, -1, -1), title=f"{what}\nwhat the colorizer makes of the input")


def finalize(learn, recipe: Recipe, run_dir: Path, table, valid_preds=None) -> dict:
    """predictions.csv, plots/roc.png, plots/colorizer.png and calibration.json (fitted on valid) of the best model,
    and its AUCs on the table's evaluation split. `valid_preds`: (probabilities, targets) of the best model on the
    validation split when training already saw them."""
    labels, split = list(learn.dls.vocab), table.eval_split()
    valid = (*valid_preds, learn.dls.valid.dataset.rows) if valid_preds else predict_split(learn, table, "valid")
    if not runfolder.calibration_path(run_dir).exists():  # a run finishing again keeps a user's `calibrate`
        runfolder.write_calibration(run_dir, calibration.fit(*valid[:2], labels, table.single_label))
    probs, targets, rows = valid if split == "valid" else predict_split(learn, table, split)
    runfolder.write_predictions(run_dir, predictions_frame(probs, targets, rows, labels))
    plot_roc(runfolder.plot_path(run_dir, runfolder.ROC_PLOT), roc_inputs(probs, targets, labels),
             title=f"{run_title(recipe)} ({split}, {len(rows)} images)")
    colorizer_figure(runfolder.plot_path(run_dir, runfolder.COLORIZER_PLOT), learn, learn.dls.valid.one_batch()[0][:4],
                     f"{run_title(recipe)}: the first 4 validation images")
    return scores(probs, targets, rows, labels, recipe.data.reader, table.single_label)


def mid_epoch_scores(learn) -> dict:
    """Mean validation AUC and loss in the middle of an epoch (train.eval_every_iters), restoring every module's
    mode; the loss averaged over images as fastai's valid_loss is."""
    modes = {m: m.training for m in learn.model.modules()}
    learn.model.eval()
    preds, targs, loss, n = [], [], 0.0, 0
    with torch.no_grad():
        for xb, yb in learn.dls.valid:
            xb, yb = xb.as_subclass(torch.Tensor), yb.as_subclass(torch.Tensor)  # as PlainTensors hands them over
            out = learn.model(xb)
            loss, n = loss + float(learn.loss_func(out, yb)) * len(xb), n + len(xb)
            preds.append(learn.loss_func.activation(out).float().cpu())
            targs.append(yb.cpu())
    for m, training in modes.items():
        m.train(training)
    return {"mean_auc": mean_auc(torch.cat(preds).numpy(), torch.cat(targs).numpy()), "valid_loss": loss / max(1, n)}


def frozen_features(learn, rows: pd.DataFrame):
    """Pooled features of the model's colorizer + body (eval mode, validation preprocessing) for `rows`: what a
    linear probe of a frozen body sees."""
    body = learn.model.backbone
    learn.model.eval()
    out = []
    with torch.no_grad():
        for xb, in learn.dls.test_dl(rows, with_labels=False):
            out.append(body.forward_head(body.forward_features(learn.model.colorizer(xb)), pre_logits=True).cpu())
    return torch.cat(out).numpy()


def summary_line(result: dict) -> str:
    acc = f", ACC {result['acc']:.4f}" if "acc" in result else ""
    return f"mean AUC {result['mean_auc']:.4f}{acc}{constant_note(result)}"


def constant_note(result: dict) -> str:
    """What an arg-max that never changes means, next to the ACC it makes."""
    label = result.get("constant_prediction")
    return f" - every image predicted {label}: ACC is that class's share, not skill" if label else ""
