"""`medcolor run recipe --folds K` (and `run sweep --folds K`): K-fold cross-validation grouped by patient. One
cross-validation folder per seed, `runs/<recipe>/<stamp>-<backbone>-s<seed>-cv<K>/`, holds the fold runs (ordinary
run folders, `...-f1ofK`), folds.csv (image, group, fold), oof_predictions.csv (every pool image predicted once, by
the fold model that did not train on it, with that model's calibration), the pooled out-of-fold AUC with its
grouped bootstrap CI and the fold-to-fold spread (metrics.json), and is itself an ensemble of its fold models
(ensembles.py) scored on the untouched test split."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ..core import runfolder
from ..tasks.classification import predictions_frame, scores
from ..core.errors import RunError, UsageError
from .evaluate import labelled_images, scored_predictions
from ..core.io import info
from ..tasks.metrics import label_aucs, mean_of
from ..training.recipes import load_recipe, recipe_to_yaml
from ..training.runs import load_model

MAX_FOLDS = 20


def run_cv(name_or_path: str, overrides=(), folds: int = 5, seed: int | None = None, n_seeds: int | None = None,
           runs_dir: str | Path = "runs", quiet: bool = False) -> list[dict]:
    """One cross-validation per seed; each returns its folder's metrics (pooled OOF, per-fold, ensemble on test)."""
    from ..training.train import seed_list

    if not 2 <= folds <= MAX_FOLDS:
        raise UsageError(f"--folds must be between 2 and {MAX_FOLDS}, got {folds}")
    if any(o.split("=", 1)[0] in ("data.fold", "data.folds") for o in overrides):
        raise UsageError("--folds sets data.folds and data.fold itself; leave them out of the overrides")
    base = load_recipe(name_or_path, list(overrides) + [f"data.folds={folds}"])
    return [cross_validate(name_or_path, list(overrides) + [f"train.seed={s}", f"data.folds={folds}"], runs_dir, quiet)
            for s in seed_list(base, seed, n_seeds)]


def cross_validate(name_or_path: str, overrides: list, runs_dir, quiet: bool) -> dict:
    from .ensembles import finish, write_members
    from ..training.train import run_recipe

    recipe = load_recipe(name_or_path, overrides)
    k = recipe.data.folds
    assignment, has_test = fold_assignment(recipe)
    folder = runfolder.new_run_dir(Path(runs_dir), recipe.name, recipe.model.backbone, recipe.train.seed,
                                   runfolder.cv_suffix(k), plots=False)
    try:
        runfolder.write_start(folder, recipe_to_yaml(recipe), {}, None)
        runfolder.write_folds(folder, assignment)
        info(f"cross-validation folder: {folder} ({k} folds, {len(assignment)} pool images in "
             f"{assignment['group'].nunique()} patients)")
        runs = []
        for fold in range(1, k + 1):
            info(f"fold {fold} of {k}")
            runs.append(Path(run_recipe(name_or_path, overrides + [f"data.fold={fold}"], runs_dir=runs_dir,
                                        quiet=quiet, into=folder)[0]["run_dir"]))
    except BaseException:
        if not any(runfolder.is_finished(p) for p in folder.iterdir() if p.is_dir()):
            shutil.rmtree(folder, ignore_errors=True)  # no fold finished: nothing worth keeping
        raise
    oof = out_of_fold(runs, assignment)
    runfolder.write_oof(folder, oof)
    write_members(folder, runs, "folds")
    ensemble = finish(folder, score=has_test)
    result = {**cv_scores(oof, runs, recipe), "ensemble": {k_: ensemble[k_] for k_ in
                                                          ("mean_auc", "mean_auc_ci95", "auc", "acc", "split")}
              if has_test else None,
              "recipe": recipe.name, "seed": recipe.train.seed, "folds": k, "fold_seed": recipe.data.fold_seed,
              "finished": True}
    runfolder.write_metrics(folder, result)
    return {**result, "cv_dir": str(folder), "runs": [str(r) for r in runs]}


def fold_assignment(recipe) -> tuple[pd.DataFrame, bool]:
    """(folds.csv: image, group, fold of every pool image - the folds every fold run of this recipe cuts, the same
    table read with data.fold unset - checked for patients in two folds; whether a test split stays out of them)."""
    from dataclasses import replace

    from ..data.block import used_splits
    from ..data.folds import groups_in_two_folds
    from ..data.readers import read_table

    cfg = replace(recipe.data, fold=0)
    table = read_table(cfg, used_splits(cfg))
    pool = table.df[table.df["fold"] > 0]
    frame = pd.DataFrame({"image": pool["path"].to_numpy(), "group": pool["group"].to_numpy(),
                          "fold": pool["fold"].to_numpy()})
    leaked = groups_in_two_folds(frame)
    if leaked:  # StratifiedGroupKFold never does this; the check is what folds.csv promises
        raise RunError(f"{len(leaked)} patients fall in two folds (first: {leaked[0]}); this is a bug, please report it")
    return frame, bool((table.df["split"] == "test").any())


def out_of_fold(runs: list[Path], assignment: pd.DataFrame) -> pd.DataFrame:
    """Every pool image predicted once, by the fold run that validated on it (its calibrated probabilities, as
    predict gives them)."""
    parts = []
    for fold, run in enumerate(runs, start=1):
        spec, learn = load_model(run)
        images = labelled_images(run, spec, None, "valid")
        cal = runfolder.read_calibration(run)
        raw, calibrated = scored_predictions(learn, spec, images, cal)
        probs = calibrated if calibrated is not None else raw
        parts.append(predictions_frame(probs, images.targets, images.rows, images.labels).assign(fold=fold))
    oof = pd.concat(parts, ignore_index=True)
    expected = assignment.set_index("image")["fold"]
    if len(oof) != len(expected) or set(oof["path"]) != set(expected.index) or \
            (oof.set_index("path")["fold"].loc[expected.index] != expected).any():
        raise RunError("the out-of-fold predictions do not cover every pool image exactly once (images skipped as "
                       "undecodable in one fold?); run `medcolor data check` and remove them")
    return oof[["path", "split", "group", "fold"] + [c for c in oof.columns if c not in ("path", "split", "group",
                                                                                       "fold")]]


def cv_scores(oof: pd.DataFrame, runs: list[Path], recipe) -> dict:
    """Pooled out-of-fold AUC per label (grouped bootstrap CI), the per-fold out-of-fold AUC and the fold models'
    test AUCs, each with mean and sample std over folds."""
    from ..training.runs import model_spec

    labels = runfolder.labels_of(oof.columns)
    probs, targets = oof[runfolder.prob_columns(labels)].to_numpy(float), oof[labels].to_numpy(float)
    pooled = scores(probs, targets, oof, labels, recipe.data.reader, model_spec(runs[0]).single_label)
    per_fold = [mean_of(label_aucs(probs[oof["fold"] == f], targets[oof["fold"] == f], labels))
                for f in sorted(oof["fold"].unique())]
    tests = [runfolder.read_metrics(r)["mean_auc"] for r in runs]
    return {"oof": pooled, "fold_valid_auc": per_fold, "fold_valid_auc_mean": float(np.mean(per_fold)),
            "fold_valid_auc_std": float(np.std(per_fold, ddof=1)), "fold_test_auc": tests,
            "fold_test_auc_mean": float(np.mean(tests)), "fold_test_auc_std": float(np.std(tests, ddof=1)),
            "test_split": runfolder.read_metrics(runs[0]).get("split", "test")}


def format_cv(r: dict) -> str:
    o, e = r["oof"], r["ensemble"]
    return (f"{r['cv_dir']}: {r['folds']}-fold cross-validation of {r['recipe']} (seed {r['seed']})\n"
            f"  out-of-fold (pooled, {o['n_images']} images): mean AUC {o['mean_auc']:.4f} "
            f"[{o['mean_auc_ci95'][0]:.3f}, {o['mean_auc_ci95'][1]:.3f}]; per fold {r['fold_valid_auc_mean']:.4f} ± "
            f"{r['fold_valid_auc_std']:.4f}\n"
            f"  {r['test_split']}: fold models {r['fold_test_auc_mean']:.4f} ± {r['fold_test_auc_std']:.4f} "
            f"({', '.join(f'{a:.4f}' for a in r['fold_test_auc'])}); " +
            (f"their ensemble {e['mean_auc']:.4f} [{e['mean_auc_ci95'][0]:.3f}, {e['mean_auc_ci95'][1]:.3f}]" if e
             else "no test split: their ensemble is not scored"))


def done_cv(job, runs_dir: Path, folds: int) -> Path | None:
    """The finished cross-validation folder of a sweep job (its recipe with every value the job sets, K folds)."""
    from ..core.config import parse_override
    from ..training.runs import has_values

    recipe = load_recipe(job.recipe, list(job.overrides), check_unused=False)
    wanted = {".".join(path): value for path, value in map(parse_override, job.overrides)} | {"data.folds": folds}
    parent = Path(runs_dir) / recipe.name
    for folder in sorted(parent.glob(f"*{runfolder.cv_suffix(folds)}"), reverse=True) if parent.is_dir() else []:
        if runfolder.is_cv_dir(folder) and (folder / runfolder.METRICS).is_file() and \
                runfolder.read_metrics(folder).get("finished") and has_values(folder, wanted):
            return folder
    return None


def run_sweep_cv(sweep: str, extra=(), shard_text: str | None = None, runs_dir="runs", quiet: bool = False,
                 dry_run: bool = False, folds: int = 5) -> list[dict]:
    """`run sweep --folds K`: every job of this shard as a K-fold cross-validation, skipping finished ones (restart
    it and it continues). Jobs run one after another in this process: unlike plain sweeps, concurrent sweeps on one
    runs folder do not share cross-validation jobs."""
    from ..training.sweeps import plan

    results = []
    for job in plan(sweep, extra, shard_text):
        done = done_cv(job, Path(runs_dir), folds)
        if done or dry_run:
            results.append({"job": job.label, "status": "done" if done else "todo",
                            **({"run_dir": str(done)} if done else {})})
            continue
        r = run_cv(job.recipe, list(job.overrides), folds, runs_dir=runs_dir, quiet=quiet)[0]
        results.append({"job": job.label, "status": "ran", "run_dir": r["cv_dir"], "score": r["oof"]["mean_auc"]})
    return results
