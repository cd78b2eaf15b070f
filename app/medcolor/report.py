"""`medcolor report`: mean ± std over seeds, grouped by recipe, backbone, mode, starting point and data subset,
in the layout of the thesis tables (5.1: model, colorizer, strategy, AUC; 5.6: size first), plus AUC vs
training-set size."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .errors import UsageError
from .io import claim_new
from .runs import is_finished, saved_recipe, starting_point

GROUP = ["recipe", "backbone", "colorizer", "mode", "start", "subset_fraction"]


def find_runs(paths) -> list[Path]:
    """Finished run folders among `paths` (run folders, or folders holding them at any depth)."""
    runs = []
    for p in map(Path, paths):
        if not p.exists():
            raise UsageError(f"{p} does not exist")
        runs += [p] if (p / "metrics.json").is_file() else sorted(m.parent for m in p.rglob("metrics.json"))
    runs = [r for r in dict.fromkeys(runs) if is_finished(r)]
    if not runs:
        raise UsageError(f"no finished runs (folders with metrics.json) under {', '.join(map(str, paths))}")
    return runs


def run_rows(runs: list[Path]) -> pd.DataFrame:
    rows = []
    for run in runs:
        m = json.loads((run / "metrics.json").read_text())
        r = saved_recipe(run)
        keys = {"recipe": r["name"], "backbone": r["model"]["backbone"], "colorizer": r["model"].get("colorizer"),
                "mode": r["model"].get("mode"), "start": m.get("start") or starting_point(r["model"]),
                "subset_fraction": r["data"]["subset"]["fraction"], "n_train": m.get("n_train"),
                "seed": r["train"]["seed"]}
        scores = {"mean": m["mean_auc"], **m.get("auc", {})} if "mean_auc" in m else {}
        scores.update({k: m[k]["mean"] if isinstance(m[k], dict) else m[k] for k in ("psnr", "ssim", "study_auc")
                       if k in m})
        rows.append({"run_dir": str(run), **keys, **scores})
    return pd.DataFrame(rows)


def metric_columns(df: pd.DataFrame) -> list[str]:
    fixed = set(GROUP) | {"run_dir", "n_train", "seed"}
    return [c for c in df.columns if c not in fixed]


def aggregate(df: pd.DataFrame) -> pd.DataFrame:
    """One row per group: n seeds, then mean and sample std (ddof=1) of every metric."""
    metrics = metric_columns(df)
    grouped = df.groupby(GROUP, dropna=False, sort=True)
    out = grouped[metrics].agg(["mean", "std"])
    out.columns = [f"{m}_{stat}" for m, stat in out.columns]
    out.insert(0, "n_runs", grouped.size())
    out.insert(1, "n_train", grouped["n_train"].first())
    return out.reset_index()


def strategy(mode) -> str:
    return {1: "mode 1 (colorizer + head)", 2: "mode 2 (fine-tune all)", 3: "mode 3 (head only)"}.get(mode, str(mode))


def to_markdown(table: pd.DataFrame, metrics: list[str]) -> str:
    sizes, starts = table["subset_fraction"].nunique() > 1, table["start"].nunique() > 1
    head = (["size"] if sizes else []) + ["recipe", "model", "colorizer", "strategy"] + \
        (["starts from"] if starts else []) + ["runs"] + [("AUC" if m == "mean" else m) for m in metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in table.iterrows():
        cells = ([f"{r['subset_fraction']:g} ({int(r['n_train']):,})"] if sizes else []) + \
            [r["recipe"], r["backbone"], r["colorizer"], strategy(r["mode"])] + \
            ([r["start"]] if starts else []) + [str(int(r["n_runs"]))]
        cells += [_pm(r[f"{m}_mean"], r[f"{m}_std"]) for m in metrics]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def _pm(mean, std) -> str:
    if pd.isna(mean):
        return "n/a"
    return f"{mean:.4f}" if pd.isna(std) else f"{mean:.4f} ± {std:.4f}"


def auc_vs_size(table: pd.DataFrame, path: Path) -> None:
    from .plots import plot_auc_vs_size

    curves = {}
    for key, g in table.groupby(["backbone", "colorizer", "mode"]):
        g = g.sort_values("n_train")
        curves[f"{key[0]} + {key[1]}, {strategy(key[2]).split(' (')[0]}"] = (
            g["n_train"], g["mean_mean"], g["mean_std"].fillna(0))
    plot_auc_vs_size(path, curves)


def report(paths, fmt: str = "markdown", plot: str | None = "auc_vs_size.png") -> str:
    if fmt not in ("markdown", "csv", "json"):
        raise UsageError(f"--format must be markdown, csv or json, got {fmt!r}")
    df = run_rows(find_runs(paths))
    table = aggregate(df)
    if plot and table["subset_fraction"].nunique() > 1:
        auc_vs_size(table, claim_new(Path(plot)))
    if fmt == "csv":
        return table.to_csv(index=False)
    if fmt == "json":
        return table.to_json(orient="records", indent=2)
    return to_markdown(table, metric_columns(df))
