"""The `medcolor` command line: parses arguments and calls the library. No logic lives here.

Heavy libraries (torch, fastai, timm) are imported inside the commands so that `--help` stays fast.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
import sys
from typing import List, Optional

import typer

from .core.archs import ARCHS, mode_choices, uses_colorizer
from .core.runfolder import AUC_VS_REFERENCE_PLOT, AUC_VS_SIZE_PLOT
from .core._resources import shipped_yaml

app = typer.Typer(help="Colorize grayscale medical images into ImageNet networks: recipes, runs, reports.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
model_app = typer.Typer(help="Inspect models.", no_args_is_help=True)
app.add_typer(model_app, name="model")
recipes_app = typer.Typer(help="List, show, copy and validate recipes.", no_args_is_help=True)
app.add_typer(recipes_app, name="recipes")
run_app = typer.Typer(help="Train from a recipe (or a sweep of recipes).", no_args_is_help=True)
app.add_typer(run_app, name="run")
data_app = typer.Typer(help="Inspect, check and cache datasets described by data specs.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _print_version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"medcolor {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                          help="print medcolor's version and exit")) -> None:
    pass


# Choices in help texts come from the registries that are cheap to read (architectures, modes, data spec files);
# the colorizers' needs torch, so `medcolor model colorizers` lists them.
SPECS = ", ".join(shipped_yaml("data_specs"))  # the data spec files, as data.specs.list_specs reads them
SECTION_6 = ", ".join(name for name, arch in ARCHS.items() if not arch.colorizer)
DATASET_ARG = typer.Argument(..., help=f"data spec name ({SPECS})")
OVERRIDES_ARG = typer.Argument(None, help="key=value overrides of data fields, e.g. subset.fraction=0.1")
ROOT_OPT = typer.Option(None, "--root", help="dataset folder (data.root)")


def _print_json(obj) -> None:
    typer.echo(json.dumps(obj))


def _required(value, what: str):
    from .core.errors import UsageError

    if value is None:
        raise UsageError(f"give {what}")
    return value


@model_app.command("colorizers")
def model_colorizers():
    """The colorizers model.colorizer may name, with what each is."""
    from .nets.colorizers import describe_colorizers

    typer.echo(describe_colorizers())


@model_app.command("summary")
def model_summary(
    backbone: Optional[str] = typer.Option(None, help="any timm model name (default resnet18; with --model, the "
                                           "model's own body: " + ", ".join(f"{a.thesis_body} for {name}" for name, a
                                                                            in ARCHS.items() if a.thesis_body) + ")"),
    colorizer: str = typer.Option("none", help="a colorizer (`medcolor model colorizers` lists them)"),
    mode: int = typer.Option(1, help=f"transfer mode {mode_choices()}"),
    n_out: Optional[int] = typer.Option(None, "--n-out", help="number of outputs (labels; default 5, aecnn 14)"),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="input side in pixels, for MACs (320; 256 for --model)"),
    model: Optional[str] = typer.Option(None, "--model", help=f"a section-6 model: {SECTION_6}"),
    train_bn: bool = typer.Option(False, "--train-bn", help="frozen parts' BatchNorm affine parameters train too"),
    train_stem: bool = typer.Option(False, "--train-stem", help="the backbone's stem trains in mode 1"),
    recipe: Optional[str] = typer.Option(None, "--recipe", help="the network this recipe trains (its backbone, "
                                         "colorizer, mode, image size and labels; key=value arguments override it)"),
    overrides: Optional[List[str]] = typer.Argument(None, help="with --recipe: key=value overrides"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
):
    """Trainable / total parameters per part, MACs and output shape."""
    from .core.config import ModelConfig
    from .training.recipes import load_recipe, recipe_model_summary
    from .nets.summary import format_summary, summarize_arch, summarize_colornet

    def given(value, default):
        return default if value is None else value
    if recipe:
        s = recipe_model_summary(load_recipe(recipe, overrides or []))
    elif model:
        s = summarize_arch(model, given(n_out, 14), given(image_size, 256), backbone)
    else:
        s = summarize_colornet(ModelConfig(backbone=given(backbone, "resnet18"), colorizer=colorizer, mode=mode,
                                           train_bn=train_bn, train_stem=train_stem),
                               given(n_out, 5), given(image_size, 320))
    _print_json(s) if as_json else typer.echo(format_summary(s))


RECIPE_ARG = typer.Argument(..., help="recipe name (see `medcolor recipes ls`) or path to a YAML file")
RECIPE_OVERRIDES = typer.Argument(None, help="key=value overrides, e.g. train.epochs=1 model.backbone=densenet121")
RUNS_DIR_OPT = typer.Option("runs", "--runs-dir", help="where run folders go")


@recipes_app.command("ls")
def recipes_ls(as_json: bool = typer.Option(False, "--json", help="print JSON")):
    """Table of recipes: name, task, data spec, backbone, colorizer, mode, description."""
    from .training.recipes import format_recipe_table, list_recipes

    rows = list_recipes()
    _print_json(rows) if as_json else typer.echo(format_recipe_table(rows))


@recipes_app.command("show")
def recipes_show(recipe: str = RECIPE_ARG, overrides: Optional[List[str]] = RECIPE_OVERRIDES):
    """The fully resolved recipe (overrides applied and checked) as YAML."""
    from .training.recipes import load_recipe, shown_recipe

    typer.echo(shown_recipe(load_recipe(recipe, overrides or [])), nl=False)


@recipes_app.command("cp")
def recipes_cp(recipe: str = RECIPE_ARG, dest: str = typer.Argument(..., help="new YAML file (never overwritten)")):
    """Copy a recipe to edit."""
    from .training.recipes import copy_recipe

    typer.echo(f"copied to {copy_recipe(recipe, dest)}")


@recipes_app.command("validate")
def recipes_validate(recipe: str = RECIPE_ARG, overrides: Optional[List[str]] = RECIPE_OVERRIDES):
    """Check every field; all problems are listed at once."""
    from .training.recipes import validate

    r = validate(recipe, overrides or [])
    model = f"{r.model.backbone} + {r.model.colorizer}" if uses_colorizer(r.model.arch) else r.model.arch
    typer.echo(f"{r.name}: ok ({r.task}, data {r.data.spec}, {model}, mode {r.model.mode})")


@run_app.command("recipe")
def run_recipe(recipe: str = RECIPE_ARG, overrides: Optional[List[str]] = RECIPE_OVERRIDES,
               seed: Optional[int] = typer.Option(None, "--seed", help="train.seed for this run"),
               seeds: Optional[int] = typer.Option(None, "--seeds", help="run N seeds (0..N-1 or the recipe's list); "
                                                   "N > 1 ends with their ensemble's test AUC"),
               folds: Optional[int] = typer.Option(None, "--folds", help="K-fold cross-validation grouped by patient: "
                                                   "train + valid pooled into K folds, test untouched"),
               runs_dir: str = RUNS_DIR_OPT,
               resume: Optional[str] = typer.Option(None, "--resume", help="continue this run folder from last.pth"),
               quiet: bool = typer.Option(False, "--quiet", help="log lines instead of progress bars"),
               as_json: bool = typer.Option(False, "--json", help="last line of stdout: the result as JSON")):
    """Train a recipe; prints where the run folder is and the mean AUC."""
    from .training import train

    quiet = quiet or not sys.stdout.isatty()  # progress bars only on a terminal; logs elsewhere
    if folds is not None and resume:
        from .core.errors import UsageError

        raise UsageError(f"--folds starts a new cross-validation; --resume {resume} continues one run (a fold run "
                         f"too); a stopped cross-validation is started again with --folds")
    if folds is not None:
        from .results.crossval import format_cv, run_cv

        cvs = run_cv(recipe, overrides or [], folds, seed=seed, n_seeds=seeds, runs_dir=runs_dir, quiet=quiet)
        typer.echo("\n".join(format_cv(r) for r in cvs))
        if as_json:
            _print_json(cvs[0] if len(cvs) == 1 else {"cross_validations": cvs})
        return
    results = [train.resume(resume, quiet, overrides or [])] if resume else \
        train.run_recipe(recipe, overrides or [], seed=seed, n_seeds=seeds, runs_dir=runs_dir, quiet=quiet)
    results = [r for r in results if r.get("run_dir")]  # distributed helper ranks write no run
    for r in results:
        stopped = r.get("stopped_early")
        typer.echo(f"{r['run_dir']}: {r['summary']} on {r['split']} (best epoch {r['best_epoch']}"
                   + (f"; stopped after epoch {stopped['epoch']}: {stopped['why']}" if stopped else "")
                   + f", {r['seconds']:.0f} s)")
        if r.get("files"):  # a finished run folder read back (--resume) lists nothing new
            typer.echo(f"  wrote {', '.join(r['files'])}", err=True)
    from .results.ensembles import format_ensemble, of_seeds

    ensemble = None if resume else of_seeds(results, runs_dir)
    if ensemble:
        typer.echo(format_ensemble(ensemble))
    if as_json and results:
        _print_json(results[0] if len(results) == 1 else {"runs": results, "ensemble": ensemble})


@run_app.command("sweep")
def run_sweep(sweep: str = typer.Argument(..., help="sweep name (recipes/sweeps/) or YAML path"),
              overrides: Optional[List[str]] = RECIPE_OVERRIDES,
              shard: Optional[str] = typer.Option(None, "--shard", help="i/n: this machine's share of the grid"),
              runs_dir: str = RUNS_DIR_OPT,
              dry_run: bool = typer.Option(False, "--dry-run", help="list the jobs and whether each is done"),
              folds: Optional[int] = typer.Option(None, "--folds", help="every job as a K-fold cross-validation"),
              quiet: bool = typer.Option(False, "--quiet", help="log lines instead of progress bars"),
              as_json: bool = typer.Option(False, "--json", help="print JSON")):
    """Run a grid of recipes x backbones x seeds; finished runs are skipped, so it can be restarted."""
    quiet = quiet or not sys.stdout.isatty()
    if folds is not None:
        from .results.crossval import run_sweep_cv

        results = run_sweep_cv(sweep, overrides or [], shard, runs_dir, quiet, dry_run, folds)
    else:
        from .training.train import run_sweep as run

        results = run(sweep, overrides or [], shard_text=shard, runs_dir=runs_dir, quiet=quiet, dry_run=dry_run)
    if as_json:
        _print_json(results)
    else:
        if dry_run:
            from .training.sweeps import protocols

            typer.echo("\n".join(f"recipe {line}" for line in protocols(sweep, overrides or [])))
        for r in results:
            typer.echo(f"{r['status']:<5} {r['job']}" + (f"  -> {r['run_dir']}" if "run_dir" in r else ""))


@app.command("tune")
def tune(recipe: str = RECIPE_ARG, overrides: Optional[List[str]] = RECIPE_OVERRIDES,
         space: str = typer.Option(..., "--space", help="search space: a name in recipes/spaces/ or a YAML path"),
         trials: int = typer.Option(..., "--trials", help="new trials to run (a continued study adds them)"),
         study: Optional[str] = typer.Option(None, "--study", help="study folder (default studies/<recipe>-<space>)"),
         storage: Optional[str] = typer.Option(None, "--storage", help="an Optuna storage URL shared by several "
                                               "processes or machines (default: SQLite study.db in the folder)"),
         timeout: Optional[float] = typer.Option(None, "--timeout", help="start no new trial after this many seconds"),
         seed: int = typer.Option(0, "--seed", help="sampler seed; give each process that shares a study its own"),
         quiet: bool = typer.Option(False, "--quiet", help="log lines instead of progress bars"),
         as_json: bool = typer.Option(False, "--json", help="one JSON line per trial, then the study's")):
    """Choose settings on validation (Optuna: TPE sampler, median pruning): each trial is a run that never reads
    the test split; writes trials.csv, best.yaml and the optimisation plots in the study folder."""
    from .training.tune import format_trial, tune as run

    def show(row, best):
        typer.echo(json.dumps({**row, "best_value": best.value if best else None,
                               "best_trial": best.number if best else None}) if as_json else format_trial(row, best))
    r = run(recipe, overrides or [], space, trials, study, storage, timeout, seed,
            quiet=quiet or not sys.stdout.isatty(), on_trial=show)
    if as_json:
        _print_json(r)
    else:
        typer.echo(f"wrote {', '.join(r['files'])} in {r['study']}\n{r['next']}")


@app.command("ensemble")
def ensemble(inputs: List[str] = typer.Argument(..., help="run folders, ensemble or cross-validation folders, or "
                                                "folders holding runs"),
             out: str = typer.Option(..., "--out", help="the new ensemble folder (never overwritten)"),
             seeds: Optional[int] = typer.Option(None, "--seeds", help="the newest run of each of N seeds of one recipe"),
             as_json: bool = typer.Option(False, "--json", help="print JSON")):
    """Several finished runs of one task, labels and preprocessing as one model (the mean of their calibrated
    probabilities): thresholds fitted on validation, test AUC beside the members'. predict, evaluate, calibrate,
    interpret and export take the folder like a run."""
    from .results.ensembles import format_ensemble, make_ensemble

    r = make_ensemble(inputs, out, seeds)
    _print_json(r) if as_json else typer.echo(format_ensemble(r))


@app.command("report")
def report(run_dirs: List[str] = typer.Argument(..., help="run folders, or folders that hold them"),
           fmt: str = typer.Option("markdown", "--format", help="markdown, csv or json"),
           plot: str = typer.Option(AUC_VS_SIZE_PLOT, "--plot", help="AUC vs training size plot (when subsets differ; "
                                    "a bare file name goes next to the runs)"),
           vs: Optional[str] = typer.Option(None, "--vs", help="reference row: a row number, or key=value[,key=value] "
                                            "(e.g. colorizer=none: the no-colorizer row that agrees on the rest)"),
           vs_plot: str = typer.Option(AUC_VS_REFERENCE_PLOT, "--vs-plot", help="with --vs: AUC with 95% CI per row "
                                       "(a bare file name goes next to the runs)"),
           per_label: bool = typer.Option(True, "--per-label/--no-per-label", help="a column per label; without "
                                          "them, MedMNIST's layout: AUC and ACC per row"),
           html: Optional[str] = typer.Option(None, "--html", help="also write one self-contained page (PAGE.html: "
                                              "sortable table, ROC, reliability, colorizer gallery and Grad-CAM of "
                                              "the best row, model cards; opens offline); an existing page is kept "
                                              "and the new one gets -2, -3 ...")):
    """Mean ± std over seeds per label and mean, grouped by recipe, backbone, mode and subset (thesis tables);
    with --vs, each row's paired difference to a reference row with a 95% CI and Holm-corrected p; with --html,
    also one page with the table and its figures."""
    from .results.html_report import report_with_page
    from .results.report import report as make

    args = {"fmt": fmt, "plot": plot, "vs": vs, "vs_plot": vs_plot, "per_label": per_label}
    typer.echo(report_with_page(run_dirs, html, **args)[0] if html else make(run_dirs, **args))


@app.command("compare")
def compare(run_a: str = typer.Argument(..., help="a finished run, evaluation, ensemble or cross-validation folder (A)"),
            run_b: str = typer.Argument(..., help="one of the same kind, evaluated on the same images (B)"),
            n_boot: int = typer.Option(2000, "--n-boot", help="bootstrap resamples"),
            seed: int = typer.Option(0, "--seed", help="bootstrap seed"),
            as_json: bool = typer.Option(False, "--json", help="last line of stdout: the comparison as JSON")):
    """A vs B on the same test images: per-label and mean AUC, A - B with a bootstrap 95% CI, DeLong p. Two
    cross-validation folders: on their pooled out-of-fold predictions, plus the corrected resampled t-test."""
    from .results.compare import compare_runs, format_comparison

    r = compare_runs(run_a, run_b, n_boot=n_boot, seed=seed)
    _print_json(r) if as_json else typer.echo(format_comparison(r))


TTA_OPT = typer.Option(0, "--tta", help="test-time augmentation: N augmented passes (small shifts, zoom, rotation; "
                       "never flips), fastai's Learner.tta; 0: off")
DATA_OPT = typer.Option(None, "--data", help=f"another dataset: a data spec ({SPECS}); key=value arguments after the "
                         "run set its fields, e.g. data.root=DIR")
LABELS_MAP_OPT = typer.Option(None, "--labels-map", help="RUN_LABEL=DATA_LABEL for labels named differently "
                              "(repeatable; known synonyms such as Effusion = Pleural Effusion are built in)")


def _data_request(data: Optional[str], overrides, labels_map):
    """--data SPEC plus the key=value words after the run folder."""
    from .data.labels import parse_labels_map
    from .core.errors import UsageError
    from .results.evaluate import DataRequest

    if data is None:
        if overrides or labels_map:
            raise UsageError(f"{(overrides or labels_map)[0]!r}: key=value data fields and --labels-map go with "
                             f"--data SPEC")
        return None
    return DataRequest(data, list(overrides or []), parse_labels_map(labels_map))


@app.command("calibrate")
def calibrate(run_dir: str = typer.Argument(..., help="a finished run folder"),
              overrides: Optional[List[str]] = typer.Argument(None, help="with --data: key=value data fields"),
              sensitivity: Optional[float] = typer.Option(None, "--sensitivity", help="thresholds reaching this validation sensitivity"),
              specificity: Optional[float] = typer.Option(None, "--specificity", help="thresholds reaching this validation specificity"),
              replace: bool = typer.Option(False, "--replace", help="refit an existing calibration.json"),
              data: Optional[str] = DATA_OPT,
              as_json: bool = typer.Option(False, "--json", help="print JSON")):
    """Temperatures and per-label thresholds (Youden's J by default) fitted on validation -> RUN_DIR/calibration.json.
    The validation images are the run's own, or the valid split of the data --data names."""
    from .results.evaluate import calibrate_run

    r = calibrate_run(run_dir, sensitivity, specificity, replace, _data_request(data, overrides, None))
    _print_json(r) if as_json else typer.echo("\n".join(
        f"{lab:<28} T {r['temperature'][lab]:.3f}  threshold {r['thresholds'][lab]:.3f}" for lab in r["thresholds"]))


@app.command("lr-find")
def lr_find(recipe: str = RECIPE_ARG, overrides: Optional[List[str]] = RECIPE_OVERRIDES,
            runs_dir: str = RUNS_DIR_OPT, num_it: int = typer.Option(50, "--num-it", help="mini-batches to try"),
            as_json: bool = typer.Option(False, "--json", help="print JSON")):
    """fastai's LR finder on the recipe's model, mode and data; saves the plot, prints the suggestion."""
    from .training.recipes import load_recipe
    from .training.train import format_lr_find, lr_find as find

    r = find(load_recipe(recipe, overrides or []), runs_dir=Path(runs_dir), num_it=num_it)
    _print_json(r) if as_json else typer.echo(format_lr_find(r))


@app.command("evaluate")
def evaluate(run_dir: str = typer.Argument(..., help="a finished run folder"),
             overrides: Optional[List[str]] = typer.Argument(None, help="with --data: key=value data fields"),
             split: Optional[str] = typer.Option(None, "--split", help="train, valid or test (default: test when there "
                                                 "is one, else valid - or all images of --data)"),
             data: Optional[str] = DATA_OPT, labels_map: Optional[List[str]] = LABELS_MAP_OPT,
             tta: int = TTA_OPT,
             as_json: bool = typer.Option(False, "--json", help="print JSON")):
    """Per-label AUC with 95% CI, calibration error, sensitivity / specificity at the run's thresholds, ROC and
    reliability plots and predictions.csv (in RUN_DIR/eval-<split>/, or eval-<dataset>-<split>/ with --data).
    RUN_DIR may be an ensemble or cross-validation folder."""
    from .results.evaluate import evaluate_run, format_scores

    r = evaluate_run(run_dir, split, _data_request(data, overrides, labels_map), tta)
    _print_json(r) if as_json else typer.echo(format_scores(r))


@app.command("interpret")
def interpret(run_dir: str = typer.Argument(..., help="a finished run folder"),
              words: Optional[List[str]] = typer.Argument(None, help="image files or folders (gallery and Grad-CAM "
                                                           "only), or with --data key=value data fields"),
              top_losses: int = typer.Option(9, "--top-losses", help="how many highest-loss images to show"),
              split: Optional[str] = typer.Option(None, "--split", help="valid or test (default: test when there is one)"),
              threshold: Optional[float] = typer.Option(None, "--threshold", help="fixed threshold on raw probabilities "
                                                        "(default: the run's thresholds on calibrated ones)"),
              layer: Optional[str] = typer.Option(None, "--layer", help="backbone module for Grad-CAM (default: the "
                                                  "last feature map, or the deepest stage at least 7 x 7 wide)"),
              data: Optional[str] = DATA_OPT, labels_map: Optional[List[str]] = LABELS_MAP_OPT,
              as_json: bool = typer.Option(False, "--json", help="print JSON")):
    """Top losses with images, per-label confusion matrices, the colorizer gallery and Grad-CAM
    (RUN_DIR/interpret-<split>/); on image files: the gallery and Grad-CAM of those images."""
    from .results.interpret import interpret_run

    request = _data_request(data, words if data else None, labels_map)  # --labels-map alone is refused
    r = interpret_run(run_dir, split=split, top_k=top_losses, threshold=threshold, data=request,
                      images=None if data else words, layer=layer)
    _print_json(r) if as_json else typer.echo(f"{', '.join(r['files'])} in {r['out_dir']}")


@app.command("predict")
def predict(model: str = typer.Argument(..., help="a finished run folder, or a MODEL.onnx / MODEL.pt from export"),
            images: List[str] = typer.Argument(..., help="image files or folders"),
            out: Optional[str] = typer.Option(None, "--out", help="write a CSV here (never overwritten) instead of stdout"),
            tta: int = TTA_OPT):
    """Probabilities per label for new images (temperature-scaled) and pred_<label> 0/1 at the run's thresholds;
    an exported file decides exactly like its run. MODEL may be an ensemble or cross-validation folder."""
    from .results.evaluate import predict_images

    frame = predict_images(model, images, out, tta)
    typer.echo(f"{len(frame)} images -> {out}" if out else frame.to_csv(index=False), nl=bool(out))


@app.command("export")
def export(run_dir: str = typer.Argument(..., help="a finished run folder"),
           fmt: str = typer.Option("onnx", "--format", help="onnx or torchscript"),
           out: Optional[str] = typer.Option(None, "--out", help="file to write (default RUN_DIR/model.onnx|.pt)"),
           as_json: bool = typer.Option(False, "--json", help="print JSON")):
    """The best model with its colorizer and temperature scaling as ONNX or TorchScript (its output is predict's
    p_<label>), a sidecar JSON with preprocessing, labels and thresholds, and a parity check."""
    from .results.export import export_run

    r = export_run(run_dir, fmt, out)
    _print_json(r) if as_json else typer.echo(
        f"{r['path']} (+ {Path(r['sidecar']).name}); parity: max |difference| {r['parity_max_abs_diff']:.2e} on "
        f"{r['n_images']} seeded inputs (limit 1e-4)")


@data_app.command("summary")
def data_summary(spec: Optional[str] = typer.Argument(None, help=f"data spec name ({SPECS}); omit it with "
                                                       "--recipe"),
                 overrides: Optional[List[str]] = OVERRIDES_ARG, root: Optional[str] = ROOT_OPT,
                 csv: Optional[str] = typer.Option(None, "--csv", help="label table (data.csv)"),
                 recipe: Optional[str] = typer.Option(None, "--recipe", help="count what this recipe trains on "
                                                      "(key=value arguments override the recipe)"),
                 split: str = typer.Option("train", help="train, valid or test"),
                 as_json: bool = typer.Option(False, "--json", help="print JSON")):
    """Images and per-label positives after label policy and subset (reads only the label table)."""
    from .data import load_data_config
    from .data.summary import format_summary, summarize
    from .training.recipes import load_recipe, recipe_data_summary

    words = ([spec] if spec else []) + list(overrides or [])
    s = recipe_data_summary(load_recipe(recipe, words), split) if recipe else \
        summarize(load_data_config(_required(spec, "a data spec (or --recipe NAME)"), overrides or [], root=root,
                                   csv=csv), split=split)
    _print_json(s) if as_json else typer.echo(format_summary(s))


@data_app.command("check")
def data_check(spec: str = DATASET_ARG, overrides: Optional[List[str]] = OVERRIDES_ARG, root: Optional[str] = ROOT_OPT,
               as_json: bool = typer.Option(False, "--json", help="print JSON")):
    """Verify that every listed image exists and decodes; report missing/corrupt files with counts."""
    from .data import load_data_config
    from .data.summary import check

    s = check(load_data_config(spec, overrides or [], root=root))
    _print_json(s) if as_json else typer.echo(f"{s['n_images']:,} images: all present and decodable")


@data_app.command("cache")
def data_cache(spec: str = DATASET_ARG, overrides: Optional[List[str]] = OVERRIDES_ARG, root: Optional[str] = ROOT_OPT,
               size: int = typer.Option(320, "--size", help="shorter side of the cached copies"),
               as_json: bool = typer.Option(False, "--json", help="print JSON")):
    """Pre-resize images once; later runs at image_size <= SIZE read the cache automatically."""
    from .data import load_data_config
    from .data.summary import cache

    s = cache(load_data_config(spec, overrides or [], root=root), size)
    _print_json(s) if as_json else typer.echo(f"cached {s['n_images']:,} images ({s['written']:,} new) in {s['cache_dir']}")


def _quiet_warnings() -> None:
    """Library deprecation noise off; our own warnings as one `warning: ...` line each."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    seen = set()  # each warning once, though e.g. the LR finder's own learner reads the data again

    def show(message, *_args, **_kw):
        if str(message) not in seen:
            seen.add(str(message))
            typer.echo(f"warning: {message}", err=True)
    warnings.showwarning = show


def _draw_off_screen() -> None:
    """medcolor's commands write figures to files; as a library it leaves the user's backend alone (notebooks).
    Said through the environment while matplotlib is not loaded yet, so `--help` does not pay for importing it."""
    if "matplotlib" in sys.modules:
        sys.modules["matplotlib"].use("Agg")
    else:
        os.environ["MPLBACKEND"] = "Agg"


def _sigterm_stops_like_ctrl_c() -> None:
    """kill / timeout / job schedulers send SIGTERM: stop through the same path as Ctrl-C (runs stay resumable)."""
    import signal
    import threading

    from .core.errors import Terminated

    def stop(*_):
        raise Terminated()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)


def _capped(message: str, limit: int = 2000) -> str:
    """An error line quotes what it was given; a YAML alias bomb must not make it 62 million characters long."""
    message = " ".join(message.split("\n"))
    return message if len(message) <= limit else f"{message[:limit]}... ({len(message):,} characters in all)"


def _interrupted(e) -> int:
    """Ctrl-C (130) or SIGTERM (143) outside a run's own handling: one line; nothing was left half-written."""
    from .core.errors import stop_signal

    name, code = stop_signal(e) if isinstance(e, KeyboardInterrupt) else ("Ctrl-C", 130)  # click's Abort: Ctrl-C
    typer.echo(f"error: {name}: stopped; files are written whole or not at all", err=True)
    return code


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point: every failure becomes one `error: ...` line on stderr (a traceback only with --debug)."""
    from typer.exceptions import Abort, Exit, TyperException
    from .core.errors import MedcolorError

    _quiet_warnings()
    _sigterm_stops_like_ctrl_c()
    _draw_off_screen()
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    try:
        code = typer.main.get_command(app).main(args, prog_name="medcolor", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except Exit as e:  # click turns a KeyboardInterrupt (Ctrl-C, our SIGTERM) outside a run into Exit(130)
        cause = e.__cause__ or e.__context__
        if isinstance(cause, KeyboardInterrupt):
            return _interrupted(cause)
        return e.exit_code
    except TyperException as e:  # usage errors (bad option, missing argument)
        if debug:
            raise
        typer.echo(f"error: {e.format_message()} (see `medcolor {' '.join(args[:2])} --help`)", err=True)
        return 2
    except MedcolorError as e:
        if debug:
            raise
        typer.echo(f"error: {_capped(str(e))}", err=True)
        return e.exit_code
    except (KeyboardInterrupt, Abort) as e:
        return _interrupted(e)
    except Exception as e:  # an unexpected failure while running: one line unless --debug
        if debug:
            raise
        from .core.io import write_failure

        unwritable = write_failure(e) if isinstance(e, OSError) else None  # a full disk, a read-only folder
        if unwritable:
            typer.echo(f"error: {unwritable}", err=True)
            return unwritable.exit_code
        first = str(e).splitlines()[0] if str(e) else ""
        typer.echo(f"error: {type(e).__name__}: {first} (rerun with --debug for the traceback)", err=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
