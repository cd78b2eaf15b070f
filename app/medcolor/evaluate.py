"""`medcolor evaluate` and `medcolor predict`: a finished run's best model on one split, or on new images."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .classification import predict_split, predictions_frame, scores
from .errors import UsageError
from .io import claim_new, write_csv, write_json
from .metrics import roc_inputs
from .plots import plot_roc
from .runs import load_run
from .tasks import task_of


def evaluate_run(run_dir: str | Path, split: str | None = None) -> dict:
    """AUCs, predictions.csv and roc.png for one split, in a new eval-<split> folder (never overwriting)."""
    recipe, learn = load_run(run_dir)
    if not task_of(recipe).predicts_labels:
        raise UsageError(f"{run_dir} is a {recipe.task} run; its PSNR / SSIM are in metrics.json and predictions.csv")
    split = split or learn.dls.table.eval_split()
    labels = list(learn.dls.vocab)
    probs, targets, rows = predict_split(learn, split)
    out = claim_new(Path(run_dir) / f"eval-{split}", is_dir=True)
    result = {"run_dir": str(run_dir), "split": split, "out_dir": str(out),
              **scores(probs, targets, rows, labels, recipe.data.reader)}
    write_csv(out / "predictions.csv", predictions_frame(probs, targets, rows, labels))
    plot_roc(out / "roc.png", roc_inputs(probs, targets, labels), title=f"{recipe.name} ({split})")
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
    """The run's best model on new images, with the validation preprocessing."""
    recipe, learn = load_run(run_dir)
    if not task_of(recipe).predicts_labels:
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
