"""Figures of a run: ROC, loss history, colorizer output, confusion matrices, top losses, reconstructions, AUC vs
training-set size. Each takes plain arrays and writes a PNG atomically (io.save_figure)."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt  # the backend stays the user's: medcolor's commands choose Agg in cli.main
import numpy as np
import pandas as pd

from .io import save_figure


def plot_roc(path: Path, curves: dict, title: str = "") -> None:
    """curves: label -> (targets, probabilities) of the images whose label is known (metrics.roc_inputs)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = plt.subplots(figsize=(5.5, 5))
    for label, (t, p) in curves.items():
        fpr, tpr, _ = roc_curve(t, p)
        ax.plot(fpr, tpr, label=f"{label} ({roc_auc_score(t, p):.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title or "ROC")
    ax.legend(loc="lower right", fontsize=8)
    save_figure(fig, path)


def plot_history(path: Path, rows: list[dict], monitor: str = "mean_auc", title: str = "",
                 best_epoch: int | None = None, best_by: str = "", stopped: dict | None = None) -> None:
    """Losses (left axis) and the task's score (right axis) per whole epoch, the epoch of best.pth (chosen by
    `best_by`) marked, and where training stopped early and why; one legend, below the axes, so it covers no point."""
    from matplotlib.ticker import MaxNLocator

    h = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(6, 4.4))
    lines = [ax.plot(h["epoch"], h[col], marker="o", label=col)[0] for col in ("train_loss", "valid_loss") if col in h]
    ax.set(xlabel="epoch", ylabel="loss", title=title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if monitor in h:
        ax2 = ax.twinx()
        lines += ax2.plot(h["epoch"], h[monitor], color="tab:green", marker="s", label=f"{monitor} (valid)")
        ax2.set_ylabel(monitor)
        at_least(ax2, h[monitor], SCORE_SPAN)
    if best_epoch is not None and best_epoch >= 0:
        lines.append(ax.axvline(best_epoch, color="0.4", ls="--", lw=1, label=f"best.pth (epoch {best_epoch}, "
                                                                              f"by {best_by or monitor})"))
    if stopped:
        ax.annotate(f"stopped early after epoch {stopped['epoch']}: {stopped['why']}", (0.5, 1.0),
                    xycoords="axes fraction", xytext=(0, -12), textcoords="offset points", ha="center", fontsize=7,
                    color="0.3", wrap=True)
    ax.legend(lines, [ln.get_label() for ln in lines], loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2,
              fontsize=8, frameon=False)
    save_figure(fig, path)


SCORE_SPAN = 0.05  # a score axis shows at least this range: matplotlib would zoom a 0.0007 change to full height


def at_least(ax, values, span: float) -> None:
    """Widen the y axis to `span` around the values' middle when they move less (finite values only)."""
    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    if len(v) and v.max() - v.min() < span:
        middle = (v.max() + v.min()) / 2
        ax.set_ylim(middle - span / 2, middle + span / 2)


def plot_colorizer(path: Path, x, rgb, title: str = "") -> None:
    """Input | each output channel | RGB composite per image (thesis figure 5.1); x the input in [0, 1], (n, 1, h, w)
    gray (shown stretched to its range) or (n, 3, h, w) RGB (shown as it is), rgb (n, 3, h, w).
    One mosaic on one axes, each panel scaled to its own range: a 20-axes grid took 1.3 s of every run. With
    `rgb` None (no colorizer) only the inputs, and the title says so."""
    def scaled(a):
        lo, hi = a.min(axis=(-2, -1), keepdims=True), a.max(axis=(-2, -1), keepdims=True)
        return (a - lo) / (hi - lo + 1e-8)

    x = np.asarray(x, dtype=np.float32)
    rgb = None if rgb is None else np.asarray(rgb, dtype=np.float32)
    gray = [] if rgb is None else [scaled(rgb[:, c]) for c in range(3)]
    shown = scaled(x[:, 0])[..., None].repeat(3, axis=-1) if x.shape[1] == 1 else x.transpose(0, 2, 3, 1)
    panels = [shown] + [np.repeat(g[..., None], 3, axis=-1) for g in gray] + \
        ([] if rgb is None else [scaled(rgb).transpose(0, 2, 3, 1)])
    n, w, gap = x.shape[0], x.shape[-1], max(1, x.shape[-1] // 32)
    framed = [np.pad(p, ((0, 0), (0, gap), (0, gap), (0, 0)), constant_values=1.0) for p in panels]  # white gaps
    mosaic = np.concatenate([np.concatenate([p[r] for p in framed], axis=1) for r in range(n)], axis=0)
    names = ["input", "channel 0", "channel 1", "channel 2", "RGB"][:len(panels)]
    fig, ax = plt.subplots(figsize=(2 * len(panels), 2.1 * n))
    ax.imshow(mosaic)
    ax.set_xticks([(w + gap) * k + w / 2 for k in range(len(panels))], names, fontsize=8)
    if title:
        ax.set_title(title, fontsize=9, pad=18)
    ax.xaxis.tick_top()
    ax.set_yticks([])
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    save_figure(fig, path)


def plot_confusions(path: Path, matrices: dict, thresholds: dict, title: str = "") -> None:
    from sklearn.metrics import ConfusionMatrixDisplay

    n = len(matrices)
    fig, axes = plt.subplots(1, n, figsize=(2.8 * n, 3), squeeze=False)
    for ax, (label, cm) in zip(axes[0], matrices.items()):
        ConfusionMatrixDisplay(np.array(cm), display_labels=["neg", "pos"]).plot(ax=ax, colorbar=False)
        ax.set_title(f"{label}\nthreshold {thresholds[label]:.3g}", fontsize=8)
        if ax is not axes[0][0]:
            ax.set_ylabel("")
    title_above(fig, title, 9)
    save_figure(fig, path)


def plot_gallery(path: Path, images: list, titles: list[str], cols: int = 4, title: str = "") -> None:
    """Images with a title each (top losses), long title lines wrapped, and what the figure shows on top."""
    import textwrap

    k = len(images)
    cols = min(cols, k)
    rows = (k + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.6 * rows + 0.4), squeeze=False, layout="constrained")
    for ax, img, text in zip(axes.flat, images, titles):
        ax.imshow(img, cmap="gray")
        ax.set_title("\n".join(textwrap.fill(line, 44) for line in text.splitlines()), fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    title_above(fig, title, 9)
    save_figure(fig, path)


def title_above(fig, title: str, fontsize: int) -> None:
    """What a grid of panels shows, above its top row's titles however many lines either has (constrained layout's
    suptitle overlaps them when images keep their aspect): the text sits on the figure's top edge and the tight
    save takes it in."""
    if title:
        fig.text(0.5, 1.0, title, ha="center", va="bottom", fontsize=fontsize)


def plot_reconstructions(path: Path, x, p, y, n: int = 6) -> None:
    """Input | reconstruction | |input - reconstruction| (the basis of unsupervised anomaly detection)."""
    n = min(n, len(x))
    fig, axes = plt.subplots(n, 3, figsize=(7.5, 2.5 * n), squeeze=False)
    for r in range(n):
        for ax, img, title, cmap in zip(axes[r], (y[r, 0], p[r, 0], (y[r, 0] - p[r, 0]).abs()),
                                        ("input", "reconstruction", "|difference|"), ("gray", "gray", "magma")):
            ax.imshow(img.numpy(), cmap=cmap)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    save_figure(fig, path)


def plot_auc_vs_size(path: Path, curves: dict, title: str = "AUC vs training-set size") -> None:
    """curves: name -> (n_train, mean AUC, std) arrays."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (n, mean, std) in curves.items():
        ax.errorbar(n, mean, yerr=std, marker="o", capsize=3, label=name)
    ax.set(xscale="log", xlabel="training images", ylabel="mean AUC", title=title)
    ax.legend(fontsize=7)
    save_figure(fig, path)


def plot_reliability(path: Path, curves: dict, title: str = "") -> None:
    """curves: label -> (mean probability, observed rate, ECE, images) per non-empty bin
    (calibration.reliability_curves); each point says how many images its bin holds."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for label, (mean_p, rate, ece, counts) in curves.items():
        line, = ax.plot(mean_p, rate, marker="o", label=f"{label} (ECE {ece:.3f})")
        for px, py, n in zip(mean_p, rate, counts):
            ax.annotate(str(int(n)), (px, py), textcoords="offset points", xytext=(3, 3), fontsize=6,
                        color=line.get_color())
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlabel="mean predicted probability", ylabel="observed rate", title=title or "reliability")
    ax.legend(loc="upper left", fontsize=8)
    save_figure(fig, path)


def plot_intervals(path: Path, rows: list[tuple[str, float, float, float]], xlabel: str, title: str = "",
                   line_at: float = 0.0) -> None:
    """One horizontal interval per row: (name, value, low, high), e.g. AUCs with 95 % CIs (line_at=0.5: chance)."""
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.2))
    y = np.arange(len(rows))[::-1]
    values = np.array([r[1] for r in rows])
    err = np.abs(np.array([[r[2] for r in rows], [r[3] for r in rows]]) - values)
    ax.errorbar(values, y, xerr=err, fmt="o", capsize=3)
    ax.axvline(line_at, color="k", lw=0.8, ls="--")
    ax.set_yticks(y, [r[0] for r in rows], fontsize=8)
    ax.set(xlabel=xlabel, title=title)
    save_figure(fig, path)


def plot_gradcam(path: Path, images, colorized, cams: dict, titles: list[str], title: str = "") -> None:
    """One row per image: input | colorizer output | Grad-CAM of each label over the input.
    images (n, h, w) gray or (n, h, w, 3) RGB in [0, 1], colorized (n, h, w, 3) or None (no colorizer: no such
    column), cams: label -> (n, h, w) in [0, 1]."""
    import textwrap

    extra = [] if colorized is None else [("colorizer output", colorized)]
    n, cols = len(images), 1 + len(extra) + len(cams)
    fig, axes = plt.subplots(n, cols, figsize=(1.9 * cols, 2.1 * n + 0.4), squeeze=False, layout="constrained")
    for r in range(n):
        axes[r, 0].imshow(images[r], cmap="gray")
        axes[r, 0].set_title(titles[r], fontsize=6)
        for ax, (name, shown) in zip(axes[r, 1:], extra):
            ax.imshow(shown[r])
            ax.set_title(name, fontsize=6)
        for ax, (label, cam) in zip(axes[r, 1 + len(extra):], cams.items()):
            ax.imshow(images[r], cmap="gray")
            heat = ax.imshow(np.ma.masked_less(cam[r], 0.05), cmap="jet", alpha=0.45, vmin=0, vmax=1)  # 0: none
            none = "" if cam[r].max() > 0 else "\n(no positive evidence)"
            ax.set_title(textwrap.fill(label, 28) + none, fontsize=6)
    for ax in axes.flat:
        ax.axis("off")
    if cams:
        bar = fig.colorbar(heat, ax=axes[:, -1], shrink=0.6, pad=0.02)
        bar.set_label("Grad-CAM, scaled to the image's strongest evidence (below 0.05: not drawn)", fontsize=6)
        bar.ax.tick_params(labelsize=6)
    title_above(fig, title, 8)
    save_figure(fig, path)


def lr_finder_figure(path: Path, title: str, max_lr: float) -> None:
    """fastai's LR finder plot, drawn on pyplot's current axes, titled and with the recipe's max_lr marked."""
    ax = plt.gca()
    ax.axvline(max_lr, color="tab:red", ls="--", lw=1, label=f"the recipe's train.max_lr ({max_lr:.1e})")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    save_figure(plt.gcf(), path)


def plot_roc_rows(path: Path, curves: dict, title: str = "") -> None:
    """curves: name -> (false positive rates, true positive rates, AUC): one ROC per report row, overlaid."""
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    for name, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title or "ROC", aspect="equal")
    ax.title.set_fontsize(9)
    ax.legend(loc="lower right", fontsize=7)
    save_figure(fig, path)


def plot_reliability_panels(path: Path, panels: dict, title: str = "", cols: int = 4) -> None:
    """One reliability diagram per panel, side by side: name -> (mean probability, observed rate, ECE, images) per
    non-empty bin (calibration.reliability_curves); each point says how many images its bin holds."""
    import textwrap

    cols = min(cols, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows + 0.3), squeeze=False, sharex=True,
                             sharey=True, layout="constrained")
    for ax, (name, (mean_p, rate, ece, counts)) in zip(axes.flat, panels.items()):
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.plot(mean_p, rate, marker="o")
        for px, py, n in zip(mean_p, rate, counts):
            ax.annotate(str(int(n)), (px, py), textcoords="offset points", xytext=(3, -9), fontsize=6, color="0.3")
        ax.set_title(textwrap.fill(f"{name} (ECE {ece:.3f})", 56), fontsize=7)
        ax.set(xlim=(0, 1), ylim=(0, 1), aspect="equal")
    for ax in axes[-1]:
        ax.set_xlabel("mean predicted probability", fontsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel("observed rate", fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    title_above(fig, title, 9)
    save_figure(fig, path)
