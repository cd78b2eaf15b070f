"""The reconstruction task (SPEC 6.2, and AECNN stage 2): (input, target) slices or patches in [0, 1],
MSE or DSSIM loss, PSNR / SSIM from torchmetrics, reconstruction and |input - reconstruction| figures."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .config import DataConfig, Recipe


@lru_cache(maxsize=8)
def load_volume(path: str) -> np.ndarray:
    """A NIfTI volume scaled to [0, 1] by its own minimum and maximum (kept for the slices that follow)."""
    import nibabel as nib

    v = np.asarray(nib.load(path).dataobj, dtype=np.float32)
    lo, hi = float(v.min()), float(v.max())
    return (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)


def read_item(row) -> torch.Tensor:
    """(1, H, W) float in [0, 1]: a NIfTI slice (ixi) or a decoded image (any other spec)."""
    from .data.images import open_gray

    if "slice" in row and not pd.isna(row["slice"]):
        a = load_volume(row["path"])[..., int(row["slice"])]
    else:
        a = np.asarray(open_gray(row["path"]), dtype=np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(a))[None]


def denoise_input(x: torch.Tensor) -> torch.Tensor:
    """Source's denoising augmentation: Gaussian blur on 50 %, then 0-2 of {2 black cut-out patches, coarse
    dropout of 0-5 % of pixels}."""
    from torchvision.transforms.functional import gaussian_blur

    if torch.rand(()) < 0.5:
        x = gaussian_blur(x, kernel_size=5, sigma=float(torch.empty(()).uniform_(0.5, 1.5)))
    x = x.clone()
    h, w = x.shape[-2:]
    for op in torch.randperm(2)[: int(torch.randint(0, 3, ()))].tolist():
        if op == 0:
            for _ in range(2):
                ph, pw = max(1, h // 8), max(1, w // 8)
                top, left = int(torch.randint(0, h - ph + 1, ())), int(torch.randint(0, w - pw + 1, ()))
                x[..., top:top + ph, left:left + pw] = 0
        else:
            x[torch.rand_like(x) < float(torch.empty(()).uniform_(0, 0.05))] = 0
    return x


class PairedImages(torch.utils.data.Dataset):
    """(input, target) pairs. Hand-written: fastai's crop and flip transforms work on PIL images, and here the
    same random patch and flips must reach both tensors while the denoising noise reaches the input only."""

    def __init__(self, rows: pd.DataFrame, cfg: DataConfig, size: int, train: bool):
        self.rows, self.cfg, self.size, self.train = rows.reset_index(drop=True), cfg, size, train

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        y = self._fit(read_item(self.rows.iloc[i]))
        if self.train and self.cfg.flip and torch.rand(()) < 0.5:
            y = y.flip(-1)
        if self.train and self.cfg.vflip and torch.rand(()) < 0.5:
            y = y.flip(-2)
        x = denoise_input(y) if self.train and self.cfg.denoise else y
        return x, y

    def _fit(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        s = self.size
        if self.cfg.crop == "random" and h >= s and w >= s:
            top = int(torch.randint(0, h - s + 1, ())) if self.train else (h - s) // 2
            left = int(torch.randint(0, w - s + 1, ())) if self.train else (w - s) // 2
            return img[..., top:top + s, left:left + s]
        if (h, w) == (s, s):
            return img
        return F.interpolate(img[None], size=(s, s), mode="bilinear", align_corners=False)[0]


def build_recon_dls(recipe: Recipe, num_workers: int, device=None):
    from fastai.data.core import DataLoaders
    from .data.block import prepare_table

    cfg, t = recipe.data, recipe.train
    table = prepare_table(cfg, t.image_size)
    ds = [PairedImages(table.split(s), cfg, t.image_size, train=(s == "train")) for s in ("train", "valid")]
    dls = DataLoaders.from_dsets(*ds, bs=t.bs, num_workers=num_workers, device=device)
    dls.table = table
    return dls


def like(target, pred):
    """The gray target repeated to the prediction's channels (the ResNet50 autoencoder returns 3, as in the source)."""
    return target.expand_as(pred) if target.shape[1] != pred.shape[1] else target


def dssim_loss(pred, target):
    """DSSIM = (1 - SSIM) / 2, differentiable (torchmetrics' SSIM)."""
    from torchmetrics.functional.image import structural_similarity_index_measure as ssim

    return (1 - ssim(pred.float(), like(target, pred).float(), data_range=1.0)) / 2


def mse_loss(pred, target):
    return F.mse_loss(pred, like(target, pred))


def loss_for(name: str):
    return dssim_loss if name == "dssim" else mse_loss


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


def recon_metrics() -> list:
    """fastai AvgMetrics (named after the functions) averaging the per-image values over the validation set."""
    from fastai.metrics import AvgMetric

    return [AvgMetric(psnr), AvgMetric(ssim)]


def stats(values: np.ndarray) -> dict:
    return {"mean": float(values.mean()), "std": float(values.std()), "min": float(values.min()),
            "max": float(values.max())}


def predict(learn, rows: pd.DataFrame, cfg: DataConfig, size: int):
    """(inputs, reconstructions, targets) for `rows` without augmentation."""
    dl = learn.dls.valid.new(PairedImages(rows, cfg, size, train=False), shuffle=False, drop_last=False)
    learn.model.eval()
    xs, ps, ys = [], [], []
    with torch.no_grad():
        for xb, yb in dl:
            xs.append(xb.cpu()), ps.append(learn.model(xb).float().clamp(0, 1).cpu()), ys.append(yb.cpu())
    return torch.cat(xs), torch.cat(ps), torch.cat(ys)


def plot_reconstructions(path: Path, x, p, y, n: int = 6) -> None:
    """Input | reconstruction | |input - reconstruction| (the basis of unsupervised anomaly detection)."""
    import matplotlib.pyplot as plt
    from .evaluate import save_figure

    n = min(n, len(x))
    fig, axes = plt.subplots(n, 3, figsize=(7.5, 2.5 * n), squeeze=False)
    for r in range(n):
        for ax, img, title, cmap in zip(axes[r], (y[r, 0], p[r, 0], (y[r, 0] - p[r, 0]).abs()),
                                        ("input", "reconstruction", "|difference|"), ("gray", "gray", "magma")):
            ax.imshow(img.numpy(), cmap=cmap)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    save_figure(fig, path)


def evaluate_split(learn, recipe: Recipe, split: str, out_dir: Path) -> dict:
    from .evaluate import write_csv

    rows = learn.dls.table.split(split)
    x, p, y = predict(learn, rows, recipe.data, recipe.train.image_size)
    psnr, ssim = per_image_psnr(p, y).numpy(), per_image_ssim(p, y).numpy()
    frame = rows[["path", "split", "group"] + (["slice"] if "slice" in rows else [])].assign(psnr=psnr, ssim=ssim)
    write_csv(out_dir / "predictions.csv", frame)
    plot_reconstructions(out_dir / "plots" / "reconstructions.png" if (out_dir / "plots").is_dir()
                         else out_dir / "reconstructions.png", x, p, y)
    return {"psnr": stats(psnr), "ssim": stats(ssim), "n_images": int(len(rows)), "split": split}
