"""`medcolor evaluate` and `medcolor predict`: a finished run's best model on one split, or on new images."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import calibration
from .classification import fit_calibration, predict_split, predictions_frame, scores
from .errors import UsageError
from .io import check_output_file, claim_new, info, warn, write_csv, write_json
from .metrics import roc_inputs
from .plots import plot_reliability, plot_roc
from .runs import load_run
from .tasks import task_of


def evaluate_run(run_dir: str | Path, split: str | None = None) -> dict:
    """AUCs with bootstrap CIs, calibration error, sensitivity / specificity at the run's thresholds,
    predictions.csv, roc.png and reliability.png for one split, in a new eval-<split> folder (never overwriting)."""
    recipe, learn = load_run(run_dir)
    if not task_of(recipe).predicts_labels:
        raise UsageError(f"{run_dir} is a {recipe.task} run; its PSNR / SSIM are in metrics.json and predictions.csv")
    split = split or learn.dls.table.eval_split()
    labels = list(learn.dls.vocab)
    probs, targets, rows = predict_split(learn, split)
    out = claim_new(Path(run_dir) / f"eval-{split}", is_dir=True)
    cal = calibration.read(run_dir)
    result = {"run_dir": str(run_dir), "split": split, "out_dir": str(out),
              **scores(probs, targets, rows, labels, recipe.data.reader),
              **calibration.assess(probs, targets, labels, cal)}
    write_csv(out / "predictions.csv", predictions_frame(probs, targets, rows, labels))
    plot_roc(out / "roc.png", roc_inputs(probs, targets, labels), title=f"{recipe.name} ({split})")
    shown = calibration.calibrate(probs, cal, labels) if cal else probs
    plot_reliability(out / "reliability.png", calibration.reliability_curves(shown, targets, labels),
                     title=f"{recipe.name} ({split}{', calibrated' if cal else ''})")
    write_json(out / "metrics.json", result)
    return result


def format_scores(r: dict) -> str:
    points = r.get("operating_points", {})
    lines = [f"{'label':<28} {'AUC':>7} {'95% CI':>16} {'ECE':>6}" + ("  sens / spec at threshold" if points else "")]
    for lab, auc in r["auc"].items():
        op = points.get(lab)
        ece = r.get("ece_calibrated", r["ece"]).get(lab, float("nan"))
        lines.append(f"{lab:<28} {auc:>7.4f} {_interval(r['auc_ci95'][lab]):>16} {ece:>6.3f}" +
                     (f"  {op['sensitivity']:.2f} / {op['specificity']:.2f} at {op['threshold']:.3f}" if op else ""))
    lines.append(f"{'mean':<28} {r['mean_auc']:>7.4f} {_interval(r['mean_auc_ci95']):>16}")
    if "study_auc" in r:
        lines.append(f"{'study-level (MURA)':<28} {r['study_auc']:>7.4f}")
    note = "ECE after the run's temperature scaling" if points else "ECE of raw probabilities (no calibration.json)"
    return "\n".join(lines + [f"{r['n_images']} images, {r['split']} split; {note}; files in {r['out_dir']}"])


def _interval(ci) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def image_files(inputs) -> list[str]:
    """The image files among `inputs` (files, and folders searched recursively), each checked to decode."""
    from .data.images import require_decodable
    from .data.readers import is_image_file

    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(str(p) for p in item.rglob("*") if p.is_file() and is_image_file(p))
        elif item.is_file():
            files.append(str(item))
        else:
            raise UsageError(f"{item} does not exist; give image files or folders of images")
    if not files:
        raise UsageError(f"no images (.png, .jpg, .dcm ...) in {', '.join(map(str, inputs))}")
    require_decodable(files)
    return files


def predict_images(run_dir, inputs, out: str | None = None) -> pd.DataFrame:
    """The run's best model on new images, with the validation preprocessing."""
    if out:
        check_output_file(Path(out))
    rows = pd.DataFrame({"path": image_files(inputs)})
    recipe, learn = load_run(run_dir)
    if not task_of(recipe).predicts_labels:
        raise UsageError(f"{run_dir} is a {recipe.task} run; predict gives label probabilities of classifiers")
    labels = list(learn.dls.vocab)
    with learn.no_bar():
        probs, _ = learn.get_preds(dl=learn.dls.test_dl(rows, with_labels=False))
    frame = with_decisions(rows, probs.float().numpy(), labels, calibration.read(run_dir), run_dir)
    if out:
        write_csv(Path(out), frame)
    return frame


def with_decisions(rows: pd.DataFrame, probs, labels: list[str], cal: dict | None, run_dir) -> pd.DataFrame:
    """p_<label> (temperature-scaled when the run has calibration.json) and pred_<label> (0/1 at its thresholds)."""
    if cal is None:
        warn(f"{run_dir} has no calibration.json: raw probabilities, no pred_ columns (`medcolor calibrate {run_dir}`)")
        return rows.assign(**{f"p_{lab}": probs[:, i] for i, lab in enumerate(labels)})
    probs = calibration.calibrate(probs, cal, labels)
    columns = {}
    for i, lab in enumerate(labels):
        columns[f"p_{lab}"] = probs[:, i]
        columns[f"pred_{lab}"] = (probs[:, i] >= cal["thresholds"][lab]).astype(int)
    return rows.assign(**columns)


def calibrate_run(run_dir, sensitivity: float | None = None, specificity: float | None = None,
                  replace: bool = False) -> dict:
    """Fit (or refit, with replace) the run's temperatures and thresholds on its validation split."""
    rule = calibration.check_rule(sensitivity, specificity)
    path = Path(run_dir) / calibration.FILE
    if path.exists() and not replace:
        raise UsageError(f"{path} exists (thresholds: {calibration.read(run_dir)['threshold_rule']}); "
                         f"add --replace to refit it")
    recipe, learn = load_run(run_dir)
    if not task_of(recipe).predicts_labels:
        raise UsageError(f"{run_dir} is a {recipe.task} run; calibration is for classifiers")
    cal = fit_calibration(learn, rule)
    write_json(path, cal)
    info(f"calibration.json written: temperatures and {rule} thresholds from {cal['n_images']} validation images")
    return cal
