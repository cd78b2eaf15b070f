"""Head-only training against a linear probe of the same frozen ImageNet features, on the bundled NIH sample.

For each seed: a logistic regression (scikit-learn, per label) on the frozen EfficientNet-Lite0 features of the
training images, extracted through medcolor's own DataLoaders (validation preprocessing), scored on valid and
test; then `medcolor run recipe demo` in mode 1 from ImageNet and from a random frozen body, with and without
ColorU. Prints one table. `python benchmarks/transfer_probe.py --seeds 0 1 2 [--image-size 128 --epochs 8]`.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

EXE = str(Path(sys.executable).parent / "medcolor")


def probe(overrides: list[str]) -> dict:
    """Per-label logistic regression on frozen features: mean AUC on valid and test."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from medcolor.tasks.classification import frozen_features
    from medcolor.training.learner import build_data, build_learner
    from medcolor.training.recipes import load_recipe

    recipe = load_recipe("demo", overrides)
    dls, table = build_data(recipe)
    learn, labels = build_learner(recipe, dls), list(dls.vocab)
    x = {s: frozen_features(learn, table.split(s)) for s in ("train", "valid", "test")}
    y = {s: table.split(s)[labels].to_numpy() for s in ("train", "valid", "test")}
    out = {}
    for split in ("valid", "test"):
        aucs = []
        for j in range(len(labels)):
            clf = LogisticRegression(max_iter=2000).fit(x["train"], y["train"][:, j])
            aucs.append(roc_auc_score(y[split][:, j], clf.predict_proba(x[split])[:, 1]))
        out[split] = float(np.mean(aucs))
    return out


def medcolor_run(overrides: list[str], runs: Path) -> tuple[dict, float]:
    start = time.time()
    out = subprocess.run([EXE, "run", "recipe", "demo", *overrides, "--runs-dir", str(runs), "--json", "--quiet"],
                         capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result, time.time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--extra", nargs="*", default=[], help="more key=value overrides for every run")
    args = parser.parse_args()
    configs = {"imagenet, none": ["model.colorizer=none"], "imagenet, coloru": ["model.colorizer=coloru"],
               "random, none": ["model.colorizer=none", "model.weights=null"],
               "random, coloru": ["model.colorizer=coloru", "model.weights=null"]}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            base = ["model.mode=1", f"train.seed={seed}", *args.extra]
            p = probe(base + ["model.colorizer=none"])
            rows.append({"config": "linear probe (imagenet features)", "seed": seed, "valid": p["valid"],
                         "test": p["test"], "seconds": None})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            for name, extra in configs.items():
                r, sec = medcolor_run(base + extra, Path(tmp))
                rows.append({"config": f"mode 1, {name}", "seed": seed, "valid": r["best_valid_mean_auc"],
                             "test": r["mean_auc"], "seconds": sec})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    import pandas as pd

    df = pd.DataFrame(rows)
    table = df.groupby("config", sort=False).agg(valid=("valid", "mean"), valid_std=("valid", "std"),
                                                 test=("test", "mean"), test_std=("test", "std"),
                                                 seconds=("seconds", "mean"))
    print("| configuration | valid mean AUC | test mean AUC | seconds per run |\n|---|---|---|---|")
    for name, r in table.iterrows():
        print(f"| {name} | {r.valid:.3f} ± {r.valid_std:.3f} | {r.test:.3f} ± {r.test_std:.3f} | "
              f"{'' if pd.isna(r.seconds) else f'{r.seconds:.0f}'} |")


if __name__ == "__main__":
    main()
