"""Predictions, per-label AUC, ROC / loss / colorizer plots for a trained model (SPEC 2 `evaluate`, SPEC 7 files)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from .metrics import group_auc, label_aucs, mean_of  # noqa: E402
from .runs import atomic_write  # noqa: E402


def eval_split(table) -> str:
    return "test" if (table.df["split"] == "test").any() else "valid"


def predict_split(learn, split: str):
    """(probabilities, targets, rows of the table) for one split, with the loss function's activation."""
    from .data.block import split_dl

    dl = split_dl(learn.dls, split)
    with learn.no_bar():
        probs, targets = learn.get_preds(dl=dl)
    return probs.float().numpy(), targets.float().numpy(), dl.items


def scores(probs, targets, rows: pd.DataFrame, labels: list[str], reader: str) -> dict:
    aucs = label_aucs(probs, targets, labels)
    out = {"mean_auc": mean_of(aucs), "auc": aucs, "n_images": int(len(rows))}
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


def write_csv(path: Path, df: pd.DataFrame) -> None:
    atomic_write(path, df.to_csv(index=False))


def save_figure(fig, path: Path) -> None:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write(path, buf.getvalue())


def plot_roc(path: Path, probs, targets, labels: list[str], title: str = "") -> None:
    from sklearn.metrics import roc_curve

    fig, ax = plt.subplots(figsize=(5.5, 5))
    for i, label in enumerate(labels):
        keep = ~np.isnan(targets[:, i])
        t, p = targets[keep, i], probs[keep, i]
        if len(np.unique(t)) < 2:
            continue
        fpr, tpr, _ = roc_curve(t, p)
        auc = label_aucs(p[:, None], t[:, None], [label], warn=False)[label]
        ax.plot(fpr, tpr, label=f"{label} ({auc:.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title or "ROC")
    ax.legend(loc="lower right", fontsize=8)
    save_figure(fig, path)


def plot_history(path: Path, rows: list[dict], monitor: str = "mean_auc") -> None:
    h = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(6, 4))
    for col in ("train_loss", "valid_loss"):
        if col in h:
            ax.plot(h["epoch"], h[col], marker="o", label=col)
    ax.set(xlabel="epoch", ylabel="loss")
    if monitor in h:
        ax2 = ax.twinx()
        ax2.plot(h["epoch"], h[monitor], color="tab:green", marker="s", label=monitor)
        ax2.set_ylabel(monitor)
        ax2.legend(loc="upper right")
    ax.legend(loc="upper left")
    save_figure(fig, path)


def colorizer_outputs(model, xb: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model.colorizer(xb).float().cpu()


def plot_colorizer(path: Path, model, xb: torch.Tensor, n: int = 4) -> None:
    """Input | each output channel | RGB composite, for a fixed validation batch (thesis figure 5.1)."""
    xb = xb[:n]
    rgb = colorizer_outputs(model, xb)
    x = xb.float().cpu()
    fig, axes = plt.subplots(len(x), 5, figsize=(10, 2.1 * len(x)), squeeze=False)
    for r in range(len(x)):
        panels = [(x[r, 0], "input", "gray")] + [(rgb[r, c], f"channel {c}", "gray") for c in range(3)]
        composite = rgb[r].permute(1, 2, 0)
        lo, hi = composite.amin(dim=(0, 1)), composite.amax(dim=(0, 1))
        panels.append(((composite - lo) / (hi - lo + 1e-8), "RGB", None))
        for ax, (img, title, cmap) in zip(axes[r], panels):
            ax.imshow(img.numpy(), cmap=cmap)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    save_figure(fig, path)


def evaluate_run(run_dir: str | Path, split: str | None = None) -> dict:
    """`medcolor evaluate`: AUCs, predictions.csv and roc.png for one split, in a new eval-<split> folder."""
    from .runs import new_subdir, write_json
    from .train import load_run

    recipe, learn = load_run(run_dir)
    split = split or eval_split(learn.dls.table)
    labels = list(learn.dls.vocab)
    probs, targets, rows = predict_split(learn, split)
    out = new_subdir(Path(run_dir), f"eval-{split}")
    result = {"run_dir": str(run_dir), "split": split, "out_dir": str(out),
              **scores(probs, targets, rows, labels, recipe.data.reader)}
    write_csv(out / "predictions.csv", predictions_frame(probs, targets, rows, labels))
    plot_roc(out / "roc.png", probs, targets, labels, title=f"{recipe.name} ({split})")
    write_json(out / "metrics.json", result)
    return result


def format_scores(r: dict) -> str:
    lines = [f"{'label':<28} {'AUC':>7}"] + [f"{lab:<28} {auc:>7.4f}" for lab, auc in r["auc"].items()]
    lines.append(f"{'mean':<28} {r['mean_auc']:>7.4f}")
    if "study_auc" in r:
        lines.append(f"{'study-level (MURA)':<28} {r['study_auc']:>7.4f}")
    return "\n".join(lines + [f"{r['n_images']} images, {r['split']} split; files in {r['out_dir']}"])


def image_files(inputs) -> list[str]:
    from .data.readers import IMAGE_EXTS
    from .errors import UsageError

    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(str(p) for p in item.rglob("*") if p.suffix.lower() in IMAGE_EXTS)
        elif item.is_file():
            files.append(str(item))
        else:
            raise UsageError(f"{item} does not exist; give image files or folders of images")
    if not files:
        raise UsageError(f"no images ({', '.join(sorted({'.png', '.jpg', '.jpeg'}))} ...) in {', '.join(map(str, inputs))}")
    return files


def predict_images(run_dir, inputs, out: str | None = None) -> pd.DataFrame:
    """`medcolor predict`: the run's best model on new images, with the validation preprocessing."""
    from .errors import UsageError
    from .train import load_run

    recipe, learn = load_run(run_dir)
    if recipe.task != "classification":
        raise UsageError(f"{run_dir} is a {recipe.task} run; predict gives label probabilities of classifiers")
    if out and Path(out).exists():
        raise UsageError(f"{out} already exists; choose another --out (medcolor never overwrites)")
    labels = list(learn.dls.vocab)
    rows = pd.DataFrame({"path": image_files(inputs)})
    with learn.no_bar():
        probs, _ = learn.get_preds(dl=learn.dls.test_dl(rows, with_labels=False))
    frame = rows.assign(**{f"p_{lab}": probs[:, i].float().numpy() for i, lab in enumerate(labels)})
    if out:
        write_csv(Path(out), frame)
    return frame
