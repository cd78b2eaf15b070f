"""How the shipped fine-tuning settings of `demo-mode2` and `medmnist-finetune` were chosen: on validation only, on
two real datasets, with `medcolor tune`; the test split is scored once, after choosing.

    python benchmarks/choose_settings.py choose OUT [--trials 25]   # 4 studies + cross-validation of the best trials
    python benchmarks/choose_settings.py test OUT                   # 3 seeds of the chosen recipes on test, once

`choose` runs one study per recipe and dataset (the bundled NIH sample: 570 training / 230 validation radiographs at
64 px; BreastMNIST: 546 / 78 ultrasound images at 28 px, upsampled to 32), takes each study's three best trials,
scores every candidate on the other dataset's validation split too (data.use_test=false), then runs the best three
per recipe - max_lr rounded as it would ship - with 3 seeds on both validation splits and prints their means: the
candidate with the best mean over seeds and datasets holds on both. Nothing in `choose` reads a test split. `test` trains the shipped recipes (after their settings were written into recipes/) with 3 seeds and
prints the test rows for docs/choosing-settings.md, with `report --vs` against each recipe's reference."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

MEDCOLOR = [sys.executable, "-m", "medcolor"]
DATASETS = {  # name -> overrides that put a recipe on it
    "nih": {"demo-mode2": [], "medmnist-finetune": ["data.spec=nih-sample", "train.image_size=64", "data.labels=thesis5",
                                                     "data.any_finding=true", "data.valid_pct=0.35"]},
    "breastmnist": {r: ["data.spec=medmnist", "data.root=package:samples/breastmnist", "data.name=breastmnist",
                        "data.size=28", "train.image_size=32"]
                    for r in ("demo-mode2", "medmnist-finetune", "medmnist-linear-probe")},
}
DATASETS["nih"]["medmnist-linear-probe"] = DATASETS["nih"]["medmnist-finetune"]
RECIPES = ("demo-mode2", "medmnist-finetune", "medmnist-linear-probe")


def medcolor(*args: str) -> str:
    print("$ medcolor " + " ".join(args), flush=True)
    done = subprocess.run([*MEDCOLOR, *args], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"failed ({done.returncode}): {done.stderr.strip().splitlines()[-1]}")
    return done.stdout


def choose(out: Path, trials: int, recipes=RECIPES) -> None:
    rows = [] if not (out / "candidates.csv").is_file() else \
        pd.read_csv(out / "candidates.csv").query("recipe not in @recipes").to_dict("records")  # other recipes' rows
    for recipe in recipes:
        for data, overrides in DATASETS.items():
            study = out / "studies" / f"{recipe}@{data}"
            medcolor("tune", recipe, *overrides[recipe], "--space", recipe, "--trials", str(trials), "--study",
                     str(study), "--quiet")
            table = pd.read_csv(study / "trials.csv")
            done = table[table["state"] == "complete"].sort_values("valid_mean_auc", ascending=False).head(3)
            for _, t in done.iterrows():
                params = {k: t[k] for k in table.columns if "." in k}
                rows.append({"recipe": recipe, "found_on": data, "trial": int(t["number"]), **params,
                             f"valid_{data}": float(t["valid_mean_auc"])})
    candidates = pd.DataFrame(rows)
    for i, c in candidates.iterrows():  # each candidate on the dataset it was not found on: validation only
        if c["recipe"] not in recipes:
            continue
        other, found = next(d for d in DATASETS if d != c["found_on"]), f"{c['recipe']}@{c['found_on']}"
        trial_recipe = out / "studies" / found / "trials" / f"{c['recipe']}-t{c['trial']}.yaml"  # its values, not
        result = json.loads(medcolor("run", "recipe", str(trial_recipe), *DATASETS[other][c["recipe"]],  # passed on
                                     "data.use_test=false", "--runs-dir", str(out / "cross" / found), "--quiet",
                                     "--json").strip().splitlines()[-1])  # to the run a chain starts from
        candidates.loc[i, f"valid_{other}"] = result["best_valid_mean_auc"]
    candidates["valid_mean"] = candidates[[f"valid_{d}" for d in DATASETS]].mean(axis=1)
    candidates.to_csv(out / "candidates.csv", index=False)
    for recipe, group in candidates.groupby("recipe"):
        print(f"\n{recipe}: candidates by mean validation AUC over both datasets (seed 0)")
        print(group.sort_values("valid_mean", ascending=False).to_string(index=False))
    seeds(out, candidates)


def seeds(out: Path, candidates: pd.DataFrame, top: int = 3) -> None:
    """The best `top` distinct candidates per recipe, max_lr rounded to two digits as a recipe would ship it, over 3
    seeds on both validation splits: a best trial is partly its seed's luck, a 3-seed mean much less so."""
    done = out / "candidate-seeds.csv"
    rows = pd.read_csv(done).to_dict("records") if done.is_file() else []  # runs of an earlier, stopped call
    for recipe, group in candidates.groupby("recipe"):
        keys = [k for k in group.columns if "." in k and group[k].notna().all()]
        best = group.sort_values("valid_mean", ascending=False).drop_duplicates(keys).head(top)
        for k, (_, c) in enumerate(best.iterrows()):
            path = shipped_candidate(out, c, keys, f"{recipe}-c{k}")
            for data, overrides in DATASETS.items():
                for seed in (0, 1, 2):
                    if any(r["candidate"] == path.stem and r["data"] == data and r["seed"] == seed for r in rows):
                        continue
                    result = json.loads(medcolor("run", "recipe", str(path), *overrides[recipe], "data.use_test=false",
                                                 "--seed", str(seed), "--runs-dir", str(out / "seeds" / data),
                                                 "--quiet", "--json").strip().splitlines()[-1])
                    rows.append({"recipe": recipe, "candidate": path.stem, "found_on": c["found_on"],
                                 "trial": c["trial"], **{key: _shipped(key, c[key]) for key in keys}, "data": data,
                                 "seed": seed, "valid_auc": result["best_valid_mean_auc"]})
                    pd.DataFrame(rows).to_csv(done, index=False)
    table = pd.DataFrame(rows).fillna("-")  # a field only one recipe's space samples
    index = [c for c in table.columns if c not in ("data", "seed", "valid_auc")]
    summary = table.pivot_table(index=index, columns="data", values="valid_auc", aggfunc=["mean", "std"])
    summary.columns = [f"valid_{d} {stat}" for stat, d in summary.columns]
    summary["valid mean over both"] = table.groupby(index)["valid_auc"].mean()
    print("\nthe best candidates over 3 seeds (validation AUC, mean and std over seeds per dataset):")
    print(summary.sort_values(["recipe", "valid mean over both"], ascending=[True, False]).to_string())


def _shipped(key: str, value):
    value = value.item() if hasattr(value, "item") else value
    if key == "train.max_lr":
        return float(f"{value:.2g}")
    return int(value) if isinstance(value, float) and value.is_integer() else value  # a CSV column with gaps


def shipped_candidate(out: Path, c, keys: list, name: str) -> Path:
    """The trial's recipe file with the candidate's values as they would ship: a recipe of its own, so a chain's
    parent run gets none of them."""
    trial = out / "studies" / f"{c['recipe']}@{c['found_on']}" / "trials" / f"{c['recipe']}-t{c['trial']}.yaml"
    raw = yaml.safe_load(trial.read_text())
    for key in keys:
        section, field = key.split(".")
        raw[section][field] = _shipped(key, c[key])
    raw["name"] = name
    path = out / "candidates" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def cost(out: Path) -> None:
    """What each study cost: trials by state, seconds in trials, and the epochs pruning saved."""
    print("| study | trials | complete / pruned / failed | seconds in trials (mean per trial) | epochs trained of "
          "those sampled |")
    print("|---|---|---|---|---|")
    for study in sorted((out / "studies").iterdir()):
        t = pd.read_csv(study / "trials.csv")
        states = t["state"].value_counts()
        sampled = (t["train.epochs"] + t.get("train.freeze_epochs", 0)).sum()
        print(f"| {study.name} | {len(t)} | {states.get('complete', 0)} / {states.get('pruned', 0)} / "
              f"{states.get('fail', 0)} | {t['seconds'].sum():.0f} ({t['seconds'].mean():.1f}) | "
              f"{int(t['epochs'].sum())} of {int(sampled)} |")


def test(out: Path) -> None:
    """The chosen recipes as shipped, 3 seeds on each dataset's test split, with the references they are held to."""
    runs = out / "test-runs"
    for data, overrides in DATASETS.items():
        for recipe in ("demo", "demo-mode2", "medmnist-linear-probe", "medmnist-finetune"):
            own = overrides.get(recipe, overrides["medmnist-finetune"] if recipe.startswith("medmnist") else
                                overrides["demo-mode2"])
            medcolor("run", "recipe", recipe, *own, "--seeds", "3", "--runs-dir", str(runs / data), "--quiet")
        print(medcolor("report", str(runs / data), "--no-per-label", "--plot", ""))
        print(medcolor("report", str(runs / data), "--no-per-label", "--plot", "", "--vs", "1", "--vs-plot", ""))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["choose", "seeds", "cost", "test"])
    parser.add_argument("out", type=Path)
    parser.add_argument("--trials", type=int, default=25)
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), help="choose for these recipes only")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.step == "seeds":  # the 3-seed check alone, from a `choose` that already ran
        seeds(args.out, pd.read_csv(args.out / "candidates.csv"))
    elif args.step == "cost":
        cost(args.out)
    else:
        choose(args.out, args.trials, args.recipes) if args.step == "choose" else test(args.out)
