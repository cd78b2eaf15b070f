"""`medcolor ensemble`: several finished runs of one task, labels and preprocessing as one model - seeds of a recipe,
the folds of a cross-validation, or any list. The folder references its members (with checksums, never copies),
holds its own thresholds (calibration.json, fitted on validation or on a cross-validation's out-of-fold predictions;
its probabilities are the mean of the members' calibrated ones, so no temperature) and its test scores beside the
members'. `predict`, `evaluate`, `calibrate`, `interpret`, `export` and `load_model` take it like a run folder."""
from __future__ import annotations

from pathlib import Path

from ..core import runfolder
from ..tasks.classification import predictions_frame, scores
from ..core.errors import UsageError
from .evaluate import calibrate_run, labelled_images, scored_predictions
from ..core.io import claim_new, info, removed_on_failure
from ..training.runs import ensemble_spec, load_model, model_spec, read_recipe


def member_runs(inputs, n_seeds: int | None = None) -> list[Path]:
    """The run folders among `inputs`: run folders, ensemble or cross-validation folders (their members), or folders
    holding finished runs; with `n_seeds`, the newest finished run of each of that many seeds of one recipe."""
    runs: list[Path] = []
    for item in map(Path, inputs):
        if runfolder.is_ensemble_dir(item):
            runs += runfolder.member_dirs(item)
        elif runfolder.is_run_dir(item):
            runs.append(item)
        elif item.is_dir():
            found = sorted({m.parent for m in item.rglob(runfolder.METRICS) if runfolder.is_finished(m.parent)})
            runs += [r for r in found if not runfolder.is_cv_dir(r.parent)]  # folds belong to their CV folder
        else:
            raise UsageError(f"{item} does not exist; give run folders, ensemble folders or folders that hold runs")
    runs = list(dict.fromkeys(r.resolve() for r in runs))
    return pick_seeds(runs, n_seeds) if n_seeds else runs


def pick_seeds(runs: list[Path], n: int) -> list[Path]:
    """The newest run of each seed, the first n seeds; one recipe only."""
    recipes = {read_recipe(r).name for r in runs}
    if len(recipes) > 1:
        raise UsageError(f"--seeds takes the seeds of one recipe; these runs are of {', '.join(sorted(recipes))}")
    by_seed: dict[int, Path] = {}
    for run in sorted(runs, key=lambda r: r.name, reverse=True):
        by_seed.setdefault(read_recipe(run).train.seed, run)
    if len(by_seed) < n:
        raise UsageError(f"--seeds {n}: only {len(by_seed)} seed(s) finished ({sorted(by_seed)}); train more with "
                         f"`medcolor run recipe {recipes.pop()} --seeds {n}`")
    return [by_seed[s] for s in sorted(by_seed)[:n]]


def kind_of(runs: list[Path]) -> str:
    """seeds (one recipe, distinct seeds) or runs; a cross-validation folder's own ensemble is "folds"."""
    recipes = [read_recipe(r) for r in runs]
    same = len({r.name for r in recipes}) == 1 and len({r.train.seed for r in recipes}) == len(runs)
    return "seeds" if same else "runs"


def check_same_data(runs: list[Path]) -> None:
    """The ensemble's thresholds are fitted on its members' valid split, so every member must have held that split
    out: the same data, split and no fold (a fold run belongs to its cross-validation folder, itself an ensemble)."""
    from ..training.chains import SAME_DATA
    from ..core.config import to_dict

    datas = [to_dict(read_recipe(r).data) for r in runs]
    for run, data in zip(runs, datas):
        if data["folds"]:
            raise UsageError(f"{run} is fold {data['fold']} of a cross-validation: its folder (the one holding "
                             f"folds.csv) is already the ensemble of its folds; use that")
    for run, data in zip(runs[1:], datas[1:]):
        differ = [f"data.{k}" for k in SAME_DATA if data[k] != datas[0][k]]
        if differ:
            raise UsageError(f"{run} was trained on other data than {runs[0]} ({', '.join(differ)} differ): an "
                             f"ensemble's thresholds are fitted on a valid split every member held out")


def make_ensemble(inputs, out: str, n_seeds: int | None = None) -> dict:
    """A new ensemble folder `out`: members checked to agree, thresholds fitted on validation, test scores."""
    runs = member_runs(inputs, n_seeds)
    if len(runs) < 2:
        raise UsageError(f"an ensemble needs at least 2 finished runs; {', '.join(map(str, inputs))}: {len(runs)}")
    ensemble_spec([model_spec(r) for r in runs], [str(r) for r in runs])
    check_same_data(runs)
    if Path(out).exists():
        raise UsageError(f"--out {out} exists; give a new folder (an ensemble is never written over anything)")
    folder = claim_new(Path(out), is_dir=True)
    with removed_on_failure(folder):
        write_members(folder, runs, kind_of(runs))
        return finish(folder)


def of_seeds(results: list[dict], runs_dir) -> dict | None:
    """`run recipe --seeds N`: the N classifier runs as one ensemble, runs/<recipe>/<stamp>-<backbone>-s0_1_2-ensemble/
    (None for one run, or runs without an AUC: reconstructions)."""
    if len(results) < 2 or results[0].get("mean_auc") is None:
        return None
    runs = [Path(r["run_dir"]) for r in results]
    recipe = read_recipe(runs[0])
    ensemble_spec([model_spec(r) for r in runs], [str(r) for r in runs])
    check_same_data(runs)
    seeds = "_".join(str(read_recipe(r).train.seed) for r in runs)
    folder = runfolder.new_run_dir(Path(runs_dir), recipe.name, recipe.model.backbone, seeds, runfolder.ENSEMBLE_SUFFIX,
                                    plots=False)
    with removed_on_failure(folder):
        write_members(folder, runs, kind_of(runs))
        return finish(folder)


def write_members(folder: Path, runs: list[Path], kind: str) -> None:
    runfolder.write_ensemble(folder, {"kind": kind, "members": [runfolder.member_record(folder, r) for r in runs],
                                      "probabilities": "mean of the members' calibrated probabilities"})


def finish(folder: Path, score: bool = True) -> dict:
    """Thresholds (calibrate: out-of-fold predictions of a CV folder, else the validation split), then the
    ensemble's scores on its test split (valid for data without one) beside its members', in metrics.json and
    predictions.csv. Without `score` (a cross-validation of data without a test split: every other image trained
    a member) only the thresholds."""
    calibrate_run(folder, replace=True)
    if not score:
        info(f"ensemble {folder}: no test split, so the ensemble of the folds is not scored (the out-of-fold "
             f"predictions are the estimate)")
        return {"ensemble_dir": str(folder), "mean_auc": None}
    spec, learn = load_model(folder)
    images = labelled_images(folder, spec, None, None)
    cal = runfolder.read_calibration(folder)
    _, calibrated = scored_predictions(learn, spec, images, cal)
    runfolder.write_predictions(folder, predictions_frame(calibrated, images.targets, images.rows, images.labels))
    members = [runfolder.read_metrics(m) for m in runfolder.member_dirs(folder)]
    result = {**scores(calibrated, images.targets, images.rows, images.labels, images.reader, spec.single_label),
              "split": images.split, "kind": runfolder.read_ensemble(folder)["kind"],
              "member_mean_auc": [m.get("mean_auc") for m in members],
              "member_splits": sorted({m.get("split", "test") for m in members})}
    runfolder.write_metrics(folder, result)
    info(f"ensemble {folder}: mean AUC {result['mean_auc']:.4f} on {images.split} (members "
         f"{', '.join(f'{a:.4f}' for a in result['member_mean_auc'])})")
    return {**result, "ensemble_dir": str(folder)}


def format_ensemble(r: dict) -> str:
    members = r["member_mean_auc"]
    mean = sum(members) / len(members)
    return (f"{r['ensemble_dir']}: ensemble of {len(members)} {r['kind']}, mean AUC {r['mean_auc']:.4f} "
            f"[{r['mean_auc_ci95'][0]:.3f}, {r['mean_auc_ci95'][1]:.3f}] on {r['split']} ({r['n_images']} images); "
            f"members {', '.join(f'{a:.4f}' for a in members)} (mean {mean:.4f})")
