"""The classification task: multi-label (masked BCE) or single-label (cross-entropy) labels, per-label AUC,
predictions.csv, ROC and colorizer figures."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from . import calibration, losses, runfolder
from .config import Recipe, run_title
from .metrics import accuracy, auc_metrics, group_auc, label_aucs, mean_auc, mean_of, roc_inputs
from .plots import plot_colorizer, plot_roc
from .stats import auc_intervals

METRICS = ("auc",)


def build_dls(recipe: Recipe, num_workers: int, device=None):
    from .data.block import build_dls_from_config

    t = recipe.train
    return build_dls_from_config(recipe.data, t.image_size, t.bs, num_workers, device)


def head(recipe: Recipe, dls):
    """(n_out, loss, fastai metrics) for the labels of `dls`."""
    single = dls.valid_ds.single_label
    return len(dls.vocab), losses.loss_for(single), auc_metrics(list(dls.vocab), single)


def predict_rows(learn, rows: pd.DataFrame, with_labels: bool = True):
    """(probabilities, targets or None) of the model in `learn` for table rows, with the loss function's activation
    and the validation preprocessing."""
    with learn.no_bar():
        probs, targets = learn.get_preds(dl=learn.dls.test_dl(rows.reset_index(drop=True), with_labels=with_labels))
    return probs.float().numpy(), (targets.float().numpy() if with_labels else None)


def predict_split(learn, table, split: str):
    """(probabilities, targets, rows) for one split of a table."""
    from .data.block import split_rows

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
    return out


def predictions_frame(probs, targets, rows: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    df = pd.DataFrame({"path": rows["path"].to_numpy(), "split": rows["split"].to_numpy(),
                       "group": rows["group"].to_numpy()})
    for i, label in enumerate(labels):
        df[label] = targets[:, i]
        df[f"p_{label}"] = probs[:, i]
    return df


def shown_input(dls, xb: torch.Tensor) -> torch.Tensor:
    """A batch as the eye should see it, (n, c, h, w) in [0, 1]: fastai decodes the normalisation, so RGB data
    keeps its colours."""
    return dls.after_batch.decode(xb).float().cpu() / 255


def colorizer_figure(path: Path, learn, xb: torch.Tensor) -> None:
    """Input vs colorized output for a fixed batch (plots/colorizer.png, interpret's gallery)."""
    from .colorizers import has_colorizer

    model = learn.model.eval()
    shown = shown_input(learn.dls, xb)
    if not has_colorizer(model):
        what = "gray" if xb.shape[1] == 1 else "RGB"
        plot_colorizer(path, shown, None, title=f"no colorizer: the {what} input goes to the backbone as it is")
        return
    with torch.no_grad():
        rgb = model.colorizer(xb).float().cpu()
    if rgb.shape[-2:] != xb.shape[-2:]:  # AECNN's front end compresses: shown at the input's size
        rgb = torch.nn.functional.interpolate(rgb, size=tuple(xb.shape[-2:]), mode="nearest")
    plot_colorizer(path, shown, rgb.expand(-1, 3, -1, -1), title="what the colorizer makes of the input")


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
    plot_roc(runfolder.plot_path(run_dir, "roc.png"), roc_inputs(probs, targets, labels),
             title=f"{run_title(recipe)} ({split}, {len(rows)} images)")
    colorizer_figure(runfolder.plot_path(run_dir, "colorizer.png"), learn, learn.dls.valid.one_batch()[0][:4])
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
    return f"mean AUC {result['mean_auc']:.4f}"
