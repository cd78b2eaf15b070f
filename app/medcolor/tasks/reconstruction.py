"""The reconstruction task (brain-MRI autoencoders, AECNN stage 2): MSE or DSSIM loss, PSNR / SSIM from
torchmetrics, reconstruction and |input - reconstruction| figures."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..core.config import Recipe
from ..core.registry import Registry
from ..data.volumes import PairedImages, build_paired_dls
from ..core import runfolder
from ..core.plots import plot_reconstructions

METRICS = ("psnr", "ssim")


def build_dls(recipe: Recipe, num_workers: int, device=None):
    return build_paired_dls(recipe.data, recipe.train.image_size, recipe.train.bs, num_workers, device)


def like(target, pred):
    """The gray target repeated to the prediction's channels (the ResNet50 autoencoder returns 3, as in the source)."""
    return target.expand_as(pred) if target.shape[1] != pred.shape[1] else target


def dssim_loss(pred, target):
    """DSSIM = (1 - SSIM) / 2, differentiable (torchmetrics' SSIM)."""
    from torchmetrics.functional.image import structural_similarity_index_measure as ssim

    return (1 - ssim(pred.float(), like(target, pred).float(), data_range=1.0)) / 2


def mse_loss(pred, target):
    return F.mse_loss(pred, like(target, pred))


LOSSES = Registry("train.loss")  # a reconstruction's loss; `auto` is the thesis's default, MSE
LOSSES.register("auto", mse_loss)
LOSSES.register("mse", mse_loss)
LOSSES.register("dssim", dssim_loss)


def loss_for(name: str):
    return LOSSES.get(name)


def per_image_psnr(pred, target) -> torch.Tensor:
    from torchmetrics.functional.image import peak_signal_noise_ratio as psnr

    return psnr(pred.float().clamp(0, 1), like(target, pred).float(), data_range=1.0, reduction="none",
                dim=(1, 2, 3))


def per_image_ssim(pred, target) -> torch.Tensor:
    from torchmetrics.functional.image import structural_similarity_index_measure as ssim

    return ssim(pred.float().clamp(0, 1), like(target, pred).float(), data_range=1.0, reduction="none")


def psnr(pred, target):
    return per_image_psnr(pred, target).mean()


def ssim(pred, target):
    return per_image_ssim(pred, target).mean()


def head(recipe: Recipe, dls):
    """(n_out, loss, fastai metrics): AvgMetrics named after the functions, averaging per-image values."""
    from fastai.metrics import AvgMetric

    wanted = recipe.metrics or METRICS
    return 1, loss_for(recipe.train.loss), [AvgMetric(f) for f in (psnr, ssim) if f.__name__ in wanted]


def stats(values: np.ndarray) -> dict:
    return {"mean": float(values.mean()), "std": float(values.std()), "min": float(values.min()),
            "max": float(values.max())}


def predict(learn, rows: pd.DataFrame, recipe: Recipe):
    """(inputs, reconstructions, targets) for `rows` without augmentation."""
    ds = PairedImages(rows, recipe.data, recipe.train.image_size, train=False)
    dl = learn.dls.valid.new(ds, shuffle=False, drop_last=False)
    learn.model.eval()
    xs, ps, ys = [], [], []
    with torch.no_grad():
        for xb, yb in dl:
            xs.append(xb.cpu()), ps.append(learn.model(xb).float().clamp(0, 1).cpu()), ys.append(yb.cpu())
    return torch.cat(xs), torch.cat(ps), torch.cat(ys)


def finalize(learn, recipe: Recipe, run_dir: Path, table, valid_preds=None) -> dict:
    """PSNR / SSIM per image on the table's evaluation split (predictions.csv), plots/reconstructions.png, and their
    statistics."""
    split = table.eval_split()
    rows = table.split(split)
    x, p, y = predict(learn, rows, recipe)
    psnr_, ssim_ = per_image_psnr(p, y).numpy(), per_image_ssim(p, y).numpy()
    frame = rows[["path", "split", "group"] + (["slice"] if "slice" in rows else [])].assign(psnr=psnr_, ssim=ssim_)
    runfolder.write_predictions(run_dir, frame)
    plot_reconstructions(runfolder.plot_path(run_dir, runfolder.RECONSTRUCTIONS_PLOT), x, p, y)
    return {"psnr": stats(psnr_), "ssim": stats(ssim_), "n_images": int(len(rows)), "split": split}


def summary_line(result: dict) -> str:
    return f"PSNR {result['psnr']['mean']:.2f} dB, SSIM {result['ssim']['mean']:.4f}"
