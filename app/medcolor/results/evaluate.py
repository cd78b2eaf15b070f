"""`medcolor evaluate`, `predict` and `calibrate`: a finished run's best model, loaded from its run folder alone, on
a split of its own data, on another dataset (external validation, labels matched by name), or on new images."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..tasks import calibration
from ..core import runfolder
from ..tasks.classification import constant_note, predict_rows, predictions_frame, scores, tta_description
from ..core.errors import UsageError
from ..core.io import check_output_file, info, warn, write_csv, write_json
from ..tasks.metrics import label_aucs, mean_of, roc_inputs
from ..core.plots import plot_reliability, plot_roc
from ..training.runs import load_model, model_title, read_recipe, require_classifier


@dataclass
class DataRequest:
    """`--data SPEC [key=value ...] [--labels-map RUN=DATA]`: another dataset to evaluate a run on."""

    spec: str
    overrides: list
    labels_map: dict


@dataclass
class LabelledImages:
    """Images to evaluate a run on, with targets named as the run names its labels."""

    rows: pd.DataFrame   # path, split, group and one target column per label in `labels`
    labels: list         # the run's labels this data has, in the run's output order
    split: str           # a split name, or "all"
    folder: str          # the result folder's name: test, or chexpert-CheXpert-v1.0-small-valid
    reader: str          # the data's reader (MURA adds a study-level AUC)
    source: str          # what the data is, in words

    @property
    def targets(self) -> np.ndarray:
        return self.rows[self.labels].to_numpy(np.float32)


def labelled_images(run_dir, spec, data: DataRequest | None, split: str | None) -> LabelledImages:
    """The run's own data (its recipe's data section) or another dataset; the test split by default, else valid
    (own data: also for a run that never read its test split, data.use_test false) or all of it (another
    dataset)."""
    return own_images(run_dir, spec, split) if data is None else external_images(spec, data, split)


def own_images(run_dir, spec, split: str | None) -> LabelledImages:
    from ..data.block import evaluation_rows, split_rows, used_splits
    from ..data.readers import read_table

    cfg = read_recipe(run_dir).data
    try:
        table = read_table(cfg, ("train", "valid", "test") if split == "test" else used_splits(cfg))
    except UsageError as e:
        raise UsageError(f"the run's own data cannot be read ({e}); give where it is now with --data {cfg.spec} "
                         f"data.root=DIR") from None
    split = split or table.eval_split()
    if split != "test" and runfolder.is_cv_dir(run_dir):
        raise UsageError(f"{run_dir} is a cross-validation ensemble: its members trained on every {split} image "
                         f"(its data has {'a' if split != table.eval_split() else 'no'} test split); evaluate it on "
                         f"test, or on another dataset with --data")
    rows = evaluation_rows(cfg, split_rows(table, split))
    source = f"the {split} split of its own data"
    if split == "valid":
        source += " (the images that chose best.pth and fitted its calibration: optimistic scores)"
        if table.eval_split() == "valid":
            warn(f"{cfg.spec} data has no test split: scoring the valid split, which chose the best epoch and fitted "
                 f"the calibration, so its scores are optimistic; `--data` scores another dataset")
    return LabelledImages(rows, list(spec.labels), split, split, cfg.reader, source)


def external_images(spec, data: DataRequest, split: str | None) -> LabelledImages:
    from ..data import load_data_config
    from ..data.block import evaluation_rows
    from ..data.labels import match_labels, widest
    from ..data.readers import data_root, read_table

    cfg = widest(load_data_config(data.spec, data.overrides), data.overrides)
    root = data_root(cfg)
    where = f"{cfg.spec} data at {root}"
    table, chosen = read_table(cfg, splits=(split or "test",), allow_unsplit=True), split or "test"
    if not split and (table.unsplit_reason or table.split("test").empty):  # no test split: all of it
        table, chosen = read_table(cfg, allow_unsplit=True), "all"
    matched = match_labels(list(spec.labels), table.labels, data.labels_map, where)
    rows = table.df if chosen == "all" or table.unsplit_reason else table.split(chosen)
    if rows.empty:
        raise UsageError(f"the {chosen} split of {where} is empty; it has {', '.join(sorted(table.split_counts))}")
    rows = rows[["path", "split", "group"]].assign(**{run: rows[d].to_numpy() for run, d in matched.items()})
    rows = evaluation_rows(cfg, rows.reset_index(drop=True))
    folder = "-".join(re.sub(r"[^A-Za-z0-9_.-]+", "_", part) for part in (cfg.spec, root.name, chosen))
    return LabelledImages(rows, list(matched), chosen, folder, cfg.reader, where)


def scored_predictions(learn, spec, images: LabelledImages, cal: dict | None, tta: int = 0):
    """(raw probabilities, calibrated probabilities or None) of the evaluated labels, columns in images.labels
    order (with `tta`: test-time augmented). Temperatures apply to all outputs first: a softmax needs every class."""
    probs, _ = predict_rows(learn, images.rows, with_labels=False, tta=tta)
    calibrated = calibration.calibrate(probs, cal, list(spec.labels)) if cal else None
    keep = [list(spec.labels).index(lab) for lab in images.labels]
    return probs[:, keep], (calibrated[:, keep] if calibrated is not None else None)


def evaluate_run(run_dir: str | Path, split: str | None = None, data: DataRequest | None = None,
                 tta: int = 0) -> dict:
    """AUCs with bootstrap CIs, calibration error, sensitivity / specificity at the run's thresholds,
    predictions.csv, roc.png and reliability.png, in a new eval-<split> (or eval-<dataset>-<split>) folder; a run
    folder or an ensemble folder. With `tta` > 0 the scores are test-time augmented, and the AUCs without TTA are
    kept beside them."""
    check_tta(tta)
    spec, learn = load_model(run_dir)
    require_classifier(spec, run_dir, "evaluate")
    images = labelled_images(run_dir, spec, data, split)
    cal = runfolder.read_calibration(run_dir)
    probs, calibrated = scored_predictions(learn, spec, images, cal, tta)
    targets, labels = images.targets, images.labels
    with runfolder.result_dir(run_dir, runfolder.eval_folder(images.folder, tta)) as out:
        result = {"run_dir": str(run_dir), "split": images.split, "data": images.source, "out_dir": str(out),
                  "single_label": spec.single_label,
                  "files": [runfolder.PREDICTIONS, runfolder.ROC_PLOT, runfolder.RELIABILITY_PLOT, runfolder.METRICS],
                  **scores(probs, targets, images.rows, labels, images.reader, spec.single_label),
                  **calibration.assess(probs, targets, labels, cal, calibrated), "tta": tta_description(tta)}
        if tta:
            plain = scored_predictions(learn, spec, images, None)[0]
            result["without_tta"] = {"mean_auc": mean_of(label_aucs(plain, targets, labels)),
                                     "auc": label_aucs(plain, targets, labels)}
        if len(labels) < len(spec.labels):
            result["labels_left_out"] = [lab for lab in spec.labels if lab not in labels]
        runfolder.write_predictions(out, predictions_frame(probs, targets, images.rows, labels))
        title = f"{model_title(run_dir)}\non {images.source} ({len(images.rows)} images)" + \
            (f", TTA x {tta}" if tta else "")
        plot_roc(out / runfolder.ROC_PLOT, roc_inputs(probs, targets, labels), title=title)
        shown = calibrated if calibrated is not None else probs
        plot_reliability(out / runfolder.RELIABILITY_PLOT, calibration.reliability_curves(shown, targets, labels),
                         title=title + (", calibrated" if cal else ""))
        write_json(out / runfolder.METRICS, result)
        return result


def format_scores(r: dict) -> str:
    points, plain = r.get("operating_points", {}), r.get("without_tta")
    lines = [f"{'label':<28} {'AUC':>7} {'95% CI':>16} {'ECE':>6}" + (f" {'no TTA':>7}" if plain else "") +
             ("  sens / spec at threshold" if points else "")]
    for lab, auc in r["auc"].items():
        op = points.get(lab)
        ece = r.get("ece_calibrated", r["ece"]).get(lab, float("nan"))
        lines.append(f"{lab:<28} {auc:>7.4f} {_interval(r['auc_ci95'][lab]):>16} {ece:>6.3f}" +
                     (f" {plain['auc'][lab]:>7.4f}" if plain else "") +
                     (f"  {op['sensitivity']:.2f} / {op['specificity']:.2f} at {op['threshold']:.3f}" if op else ""))
    lines.append(f"{'mean':<28} {r['mean_auc']:>7.4f} {_interval(r['mean_auc_ci95']):>16}" +
                 (f" {'':>6} {plain['mean_auc']:>7.4f}" if plain else ""))
    if r.get("tta"):
        lines.append(f"AUC with test-time augmentation ({r['tta']['combined']}; {', '.join(r['tta']['transforms'])}; "
                     f"no flips); 'no TTA': the same model without it")
    rule = "arg-max" if r.get("single_label") else "each label at 0.5"
    lines.append(f"{'ACC (' + rule + ')':<28} {r['acc']:>7.4f}{constant_note(r)}")
    if "study_auc" in r:
        lines.append(f"{'study-level (MURA)':<28} {r['study_auc']:>7.4f}")
    note = "ECE after the run's temperature scaling" if points else "ECE of raw probabilities (no calibration.json)"
    return "\n".join(lines + [f"{r['n_images']} images, {r['data']}; {note}",
                               f"wrote {', '.join(r['files'])} in {r['out_dir']}"])


def _interval(ci) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def image_files(inputs) -> list[str]:
    """The image files among `inputs` (files, and folders searched recursively), each checked to decode."""
    from ..data.images import image_exists, require_decodable
    from ..data.readers import is_image_file

    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(str(p) for p in item.rglob("*") if p.is_file() and is_image_file(p))
        elif item.is_file() or image_exists(str(item)):  # a file, or an image inside one (MedMNIST: x.npz/test/7)
            files.append(str(item))
        else:
            raise UsageError(f"{item} does not exist; give image files or folders of images")
    if not files:
        raise UsageError(f"no images (.png, .jpg, .dcm ...) in {', '.join(map(str, inputs))}")
    require_decodable(files)
    return files


def check_tta(tta: int) -> None:
    if not 0 <= tta <= MAX_TTA:
        raise UsageError(f"--tta must be between 0 (off) and {MAX_TTA} augmented passes, got {tta}")


MAX_TTA = 64


def predict_images(model, inputs, out: str | None = None, tta: int = 0) -> pd.DataFrame:
    """A run's best model, an ensemble folder, or a file `medcolor export` wrote (MODEL.onnx / MODEL.pt with its
    sidecar), on new images with the validation preprocessing: p_<label> and pred_<label> columns, the same either
    way; `tta`: test-time augmented passes (not for an exported file: its graph holds no augmentation)."""
    from .export import is_exported, predict_exported

    check_tta(tta)
    if out:
        check_output_file(Path(out))
    if tta and is_exported(model):
        raise UsageError(f"{model} is an exported graph without test-time augmentation; predict --tta with the run "
                         f"or ensemble folder it was exported from")
    rows = pd.DataFrame({"path": image_files(inputs)})
    if is_exported(model):
        probs, labels, cal = predict_exported(Path(model), rows)
        frame = with_decisions(rows, probs, labels, cal, model, calibrated=True)
    else:
        spec, learn = load_model(model)
        require_classifier(spec, model, "predict")
        probs, _ = predict_rows(learn, rows, with_labels=False, tta=tta)
        frame = with_decisions(rows, probs, list(spec.labels), runfolder.read_calibration(model), model)
    if out:
        write_csv(Path(out), frame)
    return frame


def with_decisions(rows: pd.DataFrame, probs, labels: list[str], cal: dict | None, source,
                   calibrated: bool = False) -> pd.DataFrame:
    """p_<label> (temperature-scaled when the run has calibration.json) and pred_<label> (0/1 at its thresholds).
    `calibrated`: the probabilities are already temperature-scaled (an exported model does it in its graph)."""
    if cal is None:
        what = "was exported from a run without calibration.json" if calibrated else "has no calibration.json"
        warn(f"{source} {what}: raw probabilities, no pred_ columns (`medcolor calibrate RUN`)")
        return rows.assign(**dict(zip(runfolder.prob_columns(labels), probs.T)))
    probs = probs if calibrated else calibration.calibrate(probs, cal, labels)
    columns = {}
    for i, lab in enumerate(labels):
        columns[f"{runfolder.PROB_PREFIX}{lab}"] = probs[:, i]
        columns[f"{runfolder.PRED_PREFIX}{lab}"] = (probs[:, i] >= cal["thresholds"][lab]).astype(int)
    return rows.assign(**columns)


def calibrate_run(run_dir, sensitivity: float | None = None, specificity: float | None = None,
                  replace: bool = False, data: DataRequest | None = None) -> dict:
    """Fit (or refit, with replace) the run's temperatures and thresholds on its validation split, or on the
    valid split of the data `--data` names (the run's own data moved elsewhere)."""
    rule = calibration.check_rule(sensitivity, specificity)
    path = runfolder.calibration_path(run_dir)
    if path.exists() and not replace:
        raise UsageError(f"{path} exists (thresholds: {runfolder.read_calibration(run_dir)['threshold_rule']}); "
                         f"add --replace to refit it")
    spec, learn = load_model(run_dir)
    require_classifier(spec, run_dir, "calibrate")
    ensemble = runfolder.is_ensemble_dir(run_dir)
    if runfolder.is_cv_dir(run_dir) and data is not None:
        raise UsageError(f"{run_dir} is a cross-validation ensemble: it calibrates on its out-of-fold predictions, "
                         f"never on a valid split (its members trained on it); leave out --data")
    if runfolder.is_cv_dir(run_dir):  # every pool image was seen in training by K - 1 members
        labels, oof = runfolder.read_oof(run_dir)
        probs, targets = oof[runfolder.prob_columns(labels)].to_numpy(float), oof[labels].to_numpy(float)
        where = "out-of-fold predictions"
    else:
        try:
            images = labelled_images(run_dir, spec, data, "valid")
        except UsageError as e:
            raise UsageError(f"calibrate fits on the run's validation images: {e}") from None
        if images.labels != list(spec.labels):
            raise UsageError(f"calibrate needs every label of the run in {images.source}; it lacks "
                             f"{[lab for lab in spec.labels if lab not in images.labels]}")
        probs, targets = scored_predictions(learn, spec, images, None)[0], images.targets
        where = "validation images"
    # an ensemble averages its members' calibrated probabilities: only its thresholds are fitted (temperature 1)
    cal = calibration.fit(probs, targets, list(spec.labels), spec.single_label, rule, temperatures=not ensemble)
    cal["fitted_on"] = "out-of-fold" if where.startswith("out") else "valid"
    runfolder.write_calibration(run_dir, cal)
    info(f"wrote {path}: {'' if ensemble else 'temperatures and '}{rule} thresholds from {cal['n_images']} {where}")
    return cal
