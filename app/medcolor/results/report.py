"""`medcolor report`: mean ± std over seeds, grouped by recipe, backbone, mode, starting point and data subset,
in the layout of the thesis tables (5.1: model, colorizer, strategy, AUC; 5.6: size first), plus AUC vs
training-set size. `--vs` adds each row's paired difference in mean AUC to a reference row, on the seed-averaged
predictions, with a bootstrap 95 % CI and Holm-corrected significance across the rows."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .compare import aligned
from ..core.archs import ARCHS, MODES, gray_replicated, uses_colorizer
from ..core.errors import UsageError
from ..core.io import claim_new, info, removed_on_failure
from ..core.runfolder import AUC_VS_REFERENCE_PLOT, AUC_VS_SIZE_PLOT, METRICS, prob_columns, RECIPE, is_cv_dir, is_finished, read_metrics, read_oof, read_predictions
from ..core.config import to_dict
from ..training.runs import saved_recipe_of, starting_point
from ..tasks.stats import auc_intervals, holm, mean_over_labels, paired_comparison, rank_aucs

# Everything that makes two runs different experiments; seeds of one group are averaged.
GROUP = ["recipe", "arch", "backbone", "colorizer", "mode", "start", "data", "labels", "policy", "subset_fraction",
         "image_size", "split", "cv"]
SHOWN_WHEN_THEY_DIFFER = {"start": "starts from", "data": "data", "labels": "labels", "policy": "policy",
                          "image_size": "px", "split": "scored on", "cv": "cross-validation"}
CV_COLUMNS = ("cv_dir", "oof")  # a fold run's cross-validation folder and its pooled out-of-fold mean AUC
OTHER_SCORES = ("psnr", "ssim", "study_auc")  # beside the AUCs and ACC: reconstructions' scores, MURA's study AUC
SUMMARY = ("mean", "ACC", *OTHER_SCORES)  # every score but the per-label AUCs


def find_runs(paths) -> list[Path]:
    """Finished run folders among `paths` (run folders, cross-validation folders - their fold runs - or folders
    holding them at any depth)."""
    runs = []
    for p in map(Path, paths):
        if not p.exists():
            raise UsageError(f"{p} does not exist")
        runs += [p] if is_finished(p) else sorted(m.parent for m in p.rglob(METRICS))
    runs = [r for r in dict.fromkeys(runs) if is_finished(r)]
    if not runs:
        raise UsageError(f"no finished runs (folders with metrics.json) under {', '.join(map(str, paths))}")
    return runs


def run_rows(runs: list[Path]) -> pd.DataFrame:
    rows = []
    for run in runs:
        m = read_metrics(run)
        recipe = saved_recipe_of(run)
        r = to_dict(recipe)
        d, model = r["data"], r["model"]
        keys = {"recipe": r["name"], "arch": model["arch"], "backbone": model["backbone"],
                "colorizer": model["colorizer"], "mode": model["mode"],
                "start": m.get("start") or starting_point(recipe.model.start),
                "data": f"{d['spec']}:{d.get('root') or ''}" + (f":{d['csv']}" if d.get("csv") else "")
                        + (f":{d['name']}@{d['size']}" if d.get("reader") == "medmnist" else ""),
                "labels": _text(used(d, "labels")) + (" + any finding" if used(d, "any_finding") else ""),
                "policy": _text(used(d, "policy")), "subset_fraction": d["subset"]["fraction"],
                "image_size": r["train"]["image_size"], "split": m.get("split", "test"), "n_train": m.get("n_train"),
                "seed": r["train"]["seed"], **cross_validation(run, m)}
        scores = {"mean": m["mean_auc"], **({"ACC": m["acc"]} if "acc" in m else {}), **m.get("auc", {})} \
            if "mean_auc" in m else {}
        scores.update({k: m[k]["mean"] if isinstance(m[k], dict) else m[k] for k in OTHER_SCORES if k in m})
        if not scores:
            raise UsageError(f"{run / METRICS} says the run finished but holds no scores (mean_auc, auc or "
                             f"{', '.join(OTHER_SCORES)}): restore it from a copy, or leave this run out of the report")
        rows.append({"run_dir": str(run), **keys, **scores})
    return pd.DataFrame(rows)


def cross_validation(run: Path, metrics: dict) -> dict:
    """cv ('5-fold', or '' for a run of its own), and for a fold run its CV folder and pooled out-of-fold AUC."""
    folder = run.parent
    if not metrics.get("folds"):
        return {"cv": "", "cv_dir": None, "oof": float("nan")}
    if not is_cv_dir(folder):  # a fold run of its own (a chain's parent): not averaged with plain runs
        return {"cv": f"fold {metrics['fold']} of {metrics['folds']}", "cv_dir": None, "oof": float("nan")}
    cv = read_metrics(folder) if (folder / METRICS).is_file() else {}  # a CV stopped before it finished: no OOF
    return {"cv": f"{metrics['folds']}-fold", "cv_dir": str(folder),
            "oof": cv["oof"]["mean_auc"] if cv.get("finished") else float("nan")}


def used(data: dict, field: str):
    """A data field of a saved recipe, or None where its reader ignores it (demo's labels on MedMNIST data)."""
    from ..data.readers import reads

    reader = data.get("reader")
    return data.get(field) if reader is None or reads(reader, field) else None


def _text(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else "" if value is None else str(value)


def metric_columns(df: pd.DataFrame) -> list[str]:
    """The mean AUC and ACC first (MedMNIST's two numbers), then per-label AUCs and other scores."""
    fixed = set(GROUP) | {"run_dir", "n_train", "seed", *CV_COLUMNS}
    columns = [c for c in df.columns if c not in fixed]
    first = [c for c in ("mean", "ACC") if c in columns]
    return first + [c for c in columns if c not in first]


def without_per_label(df: pd.DataFrame) -> pd.DataFrame:
    """The runs' table without the per-label AUC columns (MedMNIST's layout: AUC and ACC per row)."""
    return df.drop(columns=[c for c in metric_columns(df) if c not in SUMMARY])


def aggregate(df: pd.DataFrame) -> pd.DataFrame:
    """One row per group: n seeds, then mean, sample std (ddof=1) and the number of runs where the metric is
    defined (a NaN is left out of the mean, and the table says so)."""
    metrics = metric_columns(df)
    grouped = df.groupby(GROUP, dropna=False, sort=True)
    out = grouped[metrics].agg(["mean", "std", "count"])
    out.columns = [f"{m}_{stat}" for m, stat in out.columns]
    out.insert(0, "n_runs", grouped.size())
    out.insert(1, "n_train", grouped["n_train"].first())
    cvs = df.drop_duplicates("cv_dir").groupby(GROUP, dropna=False, sort=True)
    out["oof_mean"], out["oof_std"] = cvs["oof"].mean(), cvs["oof"].std()  # over cross-validations (their seeds)
    out["n_cv"] = df.groupby(GROUP, dropna=False, sort=True)["cv_dir"].nunique()
    return out.reset_index()


def reference_rows(table: pd.DataFrame, selector: str) -> list:
    """Per row, the index of its reference row: `--vs 3` is row 3 for every row; `--vs colorizer=none[,mode=1]` is
    the row with those values that agrees with the row on every other grouping field (None when there is none)."""
    if selector.isdigit():
        k = int(selector) - 1
        if not 0 <= k < len(table):
            raise UsageError(f"--vs {selector}: the table has rows 1 to {len(table)}")
        return [k] * len(table)
    wanted = parse_selector(selector)
    rest = [k for k in GROUP if k not in wanted]

    def same(a, b) -> bool:
        return str(a) == str(b) or (pd.api.types.is_number(a) and _number(b) == a)

    refs = [k for k, r in table.iterrows() if all(same(r[key], v) for key, v in wanted.items())]
    if not refs:
        raise UsageError(f"--vs {selector}: no row has {selector}")
    return [next((k for k in refs if all(same(table.at[k, c], row[c]) for c in rest)), None)
            for _, row in table.iterrows()]


def parse_selector(selector: str) -> dict[str, str]:
    """`colorizer=none,mode=1` -> {'colorizer': 'none', 'mode': '1'}; {} for a row number."""
    if selector.isdigit():
        return {}
    wanted = dict(part.split("=", 1) for part in selector.split(",") if "=" in part)
    if not wanted or set(wanted) - set(GROUP):
        raise UsageError(f"--vs takes a row number or key=value pairs over {', '.join(GROUP)}; got {selector!r}")
    return wanted


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return None


def averaged_predictions(runs: list[str]):
    """(labels, predictions.csv with p_<label> averaged over the runs: the seeds of one row)."""
    labels, frame = read_predictions(Path(runs[0]))
    probs = prob_columns(labels)
    for run in runs[1:]:
        _, other = read_predictions(Path(run))
        _, _, p_other, _ = aligned(frame, other, labels, (runs[0], run))
        frame[probs] += p_other
    frame[probs] /= len(runs)
    return labels, frame


def out_of_fold_predictions(cv_dirs):
    """(labels, oof_predictions.csv averaged over cross-validations of one row): a CV row is compared on its pool."""
    labels, frame = read_oof(Path(cv_dirs[0]))
    probs = prob_columns(labels)
    for folder in cv_dirs[1:]:
        _, other = read_oof(Path(folder))
        frame[probs] += aligned(frame, other, labels, (cv_dirs[0], folder))[2]
    frame[probs] /= len(cv_dirs)
    return labels, frame


def add_versus(df: pd.DataFrame, table: pd.DataFrame, selector: str) -> pd.DataFrame:
    """vs_* columns: the row's mean AUC on seed-averaged predictions with its CI, and its paired difference to the
    reference row (CI, bootstrap p, Holm-adjusted p across the compared rows)."""
    if "mean_mean" not in table:
        raise UsageError("--vs compares AUCs; these runs have none (reconstruction runs?)")
    preds = [out_of_fold_predictions(g["cv_dir"].dropna().unique()) if g["oof"].notna().all() else
             averaged_predictions(list(g["run_dir"])) for _, g in df.groupby(GROUP, dropna=False, sort=True)]
    refs = reference_rows(table, selector)
    cols = {c: [float("nan")] * len(table) for c in ("vs_auc", "vs_auc_lo", "vs_auc_hi", "vs_diff", "vs_diff_lo",
                                                     "vs_diff_hi", "vs_p")}
    for k, (labels, frame) in enumerate(preds):
        if refs[k] is None or refs[k] == k:  # no comparison: the row's own AUC and CI
            targets, probs = frame[labels].to_numpy(float), frame[prob_columns(labels)].to_numpy(float)
            cols["vs_auc"][k] = float(mean_over_labels(rank_aucs(probs, targets)))
            cols["vs_auc_lo"][k], cols["vs_auc_hi"][k] = auc_intervals(targets, probs, labels, frame["group"])["mean"]
            continue
        ref_labels, ref_frame = preds[refs[k]]
        if ref_labels != labels:
            raise UsageError(f"--vs: row {k + 1} and its reference row {refs[k] + 1} predict different labels")
        t, p_row, p_ref, groups = aligned(frame, ref_frame, labels, (f"row {k + 1}", f"reference row {refs[k] + 1}"))
        m = paired_comparison(t, p_row, p_ref, labels, groups)["mean"]  # one bootstrap gives both CIs
        cols["vs_auc"][k], (cols["vs_auc_lo"][k], cols["vs_auc_hi"][k]) = m["auc_a"], m["ci95_a"]
        cols["vs_diff"][k], (cols["vs_diff_lo"][k], cols["vs_diff_hi"][k]) = m["diff"], m["ci95"]
        cols["vs_p"][k] = m["p_bootstrap"]
    out = table.assign(**cols, vs_reference=[None if r is None else r + 1 for r in refs])
    return out.assign(vs_p_holm=holm(out["vs_p"].tolist()))


def versus_cell(r) -> str:
    if r["vs_reference"] == r.name + 1:
        return "reference"
    if pd.isna(r["vs_diff"]):
        return "n/a (no reference row)"
    mark = " *" if r["vs_p_holm"] < 0.05 else ""
    return (f"{r['vs_diff']:+.3f} [{r['vs_diff_lo']:+.3f}, {r['vs_diff_hi']:+.3f}] vs row {int(r['vs_reference'])}, "
            f"p {r['vs_p_holm']:.3f}{mark}")


def plot_versus(table: pd.DataFrame, path: Path) -> None:
    from ..core.plots import plot_intervals

    rows = [(f"{k + 1}. {r['recipe']} | {r['colorizer']} | mode {r['mode']}" +
             (" | " + r["start"].split(" +")[0].removeprefix("weights:")[:32] if table["start"].nunique() > 1 else ""),
             r["vs_auc"], r["vs_auc_lo"], r["vs_auc_hi"]) for k, r in table.iterrows()]
    references = sorted({int(r) for r in table["vs_reference"].dropna()})
    plot_intervals(path, rows, "mean AUC of the seed-averaged predictions (bootstrap 95 % CI); dashed: chance",
                   title=f"{len(table)} report rows ({', '.join(sorted(set(table['recipe'])))}) on the "
                         f"{'/'.join(sorted(set(table['split'])))} split; reference: row "
                         f"{', '.join(map(str, references)) or '-'} (the differences are in the report's table)",
                   line_at=0.5)


def strategy(mode, colorizer: str) -> str:
    return MODES[mode].label(not gray_replicated(colorizer)) if mode in MODES else str(mode)


def to_markdown(table: pd.DataFrame, metrics: list[str]) -> str:
    head, rows = table_cells(table, metrics)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in rows])


def table_cells(table: pd.DataFrame, metrics: list[str]) -> tuple[list[str], list[list[str]]]:
    """(header, one list of cells per row) of the report table: what the markdown and the HTML page show."""
    sizes, vs, oof = table["subset_fraction"].nunique() > 1, "vs_diff" in table, bool(table["oof_mean"].notna().any())
    varying = [k for k in SHOWN_WHEN_THEY_DIFFER if table[k].nunique(dropna=False) > 1]
    head = ["row"] * vs + (["size"] if sizes else []) + ["recipe", "model", "colorizer", "strategy"] + \
        [SHOWN_WHEN_THEY_DIFFER[k] for k in varying] + ["runs"] + [("AUC" if m == "mean" else m) for m in metrics] + \
        ["pooled out-of-fold AUC"] * oof + \
        ["AUC of mean prediction [95% CI]", "difference to reference [95% CI], Holm p"] * vs
    rows = []
    for _, r in table.iterrows():
        cells = ([f"{r['subset_fraction']:g} ({int(r['n_train']):,})"] if sizes else []) + model_cells(r) + \
            [r[k] for k in varying] + [str(int(r["n_runs"]))]
        cells += [_pm(r[f"{m}_mean"], r[f"{m}_std"], r[f"{m}_count"], r["n_runs"]) for m in metrics]
        cells += [_pm(r["oof_mean"], r["oof_std"], r["n_cv"], r["n_cv"]) if r["n_cv"] else "-"] * oof
        if vs:
            cells = [str(r.name + 1)] + cells + [f"{r['vs_auc']:.4f} [{r['vs_auc_lo']:.3f}, {r['vs_auc_hi']:.3f}]",
                                                 versus_cell(r)]
        rows.append(list(map(str, cells)))
    return head, rows


def model_cells(r) -> list[str]:
    """model, colorizer, strategy: a colorizer network's backbone and mode, or the architecture's own name."""
    if uses_colorizer(r["arch"]):
        return [r["recipe"], r["backbone"], r["colorizer"], strategy(r["mode"], r["colorizer"])]
    arch = ARCHS.find(r["arch"])
    return [r["recipe"], arch.label(r["backbone"]) if arch else r["arch"], "-", "-"]


def _pm(mean, std, count, n_runs) -> str:
    if pd.isna(mean):
        return "n/a"
    text = f"{mean:.4f}" if pd.isna(std) else f"{mean:.4f} ± {std:.4f}"
    return text + (f" ({int(count)} of {int(n_runs)} runs)" if count < n_runs else "")


def auc_vs_size(table: pd.DataFrame, path: Path) -> None:
    from ..core.plots import plot_auc_vs_size

    curves = {}
    for key, g in table.groupby(["backbone", "colorizer", "mode"]):
        g = g.sort_values("n_train")
        curves[f"{key[0]} + {key[1]}, {strategy(key[2], key[1]).split(' (')[0]}"] = (
            g["n_train"], g["mean_mean"], g["mean_std"].fillna(0))
    plot_auc_vs_size(path, curves)


def beside_runs(paths, name: str) -> Path:
    """A plot's file: as given when it names a folder, else next to the runs - in the one folder reported, or in the
    folder that holds all of them (never inside one of several folders it compares, nor wherever the command runs)."""
    given = Path(name)
    if given.parent != Path("."):
        return given
    folders = [p.parent if (p / RECIPE).is_file() else p for p in map(Path, paths)]
    common = Path(os.path.commonpath([f.resolve() for f in folders]))
    if len(set(folders)) == 1 or common.parent == common:  # folders on different trees: the first one
        return folders[0] / given
    return common / given


def report(paths, fmt: str = "markdown", plot: str | None = AUC_VS_SIZE_PLOT, vs: str | None = None,
           vs_plot: str | None = AUC_VS_REFERENCE_PLOT, per_label: bool = True) -> str:
    check_format(fmt)
    df, table = report_table(paths, plot, vs, vs_plot, per_label)
    return report_text(df, table, fmt, vs)


def check_format(fmt: str) -> None:
    if fmt not in ("markdown", "csv", "json"):
        raise UsageError(f"--format must be markdown, csv or json, got {fmt!r}")


def report_table(paths, plot: str | None = None, vs: str | None = None, vs_plot: str | None = None,
                 per_label: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per run, one row per group of seeds: the report table), and its plots next to the runs."""
    parse_selector(vs or "1")
    df = run_rows(find_runs(paths))
    df = df if per_label else without_per_label(df)
    table = aggregate(df)
    if vs:
        table = add_versus(df, table, vs)
        if vs_plot:
            with removed_on_failure(claim_new(beside_runs(paths, vs_plot))) as path:
                plot_versus(table, path)
            info(f"wrote {path}")
    if plot and table["subset_fraction"].nunique() > 1:
        with removed_on_failure(claim_new(beside_runs(paths, plot))) as path:
            auc_vs_size(table, path)
        info(f"wrote {path}")
    return df, table


def report_text(df: pd.DataFrame, table: pd.DataFrame, fmt: str, vs: str | None = None) -> str:
    if fmt == "csv":
        return table.to_csv(index=False)
    if fmt == "json":
        return table.to_json(orient="records", indent=2)
    return "\n\n".join([to_markdown(table, metric_columns(df)), *table_notes(table, vs)])


def table_notes(table: pd.DataFrame, vs: str | None = None) -> list[str]:
    """What a reader of the table must know about some rows (cross-validations, scores on the valid split)."""
    notes = []
    if table["oof_mean"].notna().any():
        notes.append("A row with a pooled out-of-fold AUC is a cross-validation: its AUC is the mean ± std over the "
                     "fold models, each scored on the test split; the pooled AUC is over every pool image, predicted "
                     "once by the fold model that did not train on it" +
                     ("; with --vs such rows are compared on those out-of-fold predictions" if vs else "") + ".")
    if set(table["split"]) == {"valid"}:
        notes.append("Every row is scored on the valid split: its runs never read a test split (tuning trials), or "
                     "their data has none.")
    return notes
