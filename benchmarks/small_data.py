"""Small data done right, measured (docs/results.md, "Small datasets"): on BreastMNIST (546 / 78 / 156 ultrasound
images, 28 px upsampled to 32) and the bundled NIH sample (570 / 230 / 200 radiographs, 64 px).

    python benchmarks/small_data.py run OUT [--only a,b,c,d,e] [--datasets breastmnist,nih]
    python benchmarks/small_data.py table OUT          # the markdown tables of docs/results.md, from OUT
    python benchmarks/small_data.py speed OUT          # ensemble prediction of 5 members on 1,000 images

(a) how much a single split's test AUC moves (5 seeds of one recipe: std over seeds, and the bootstrap CI width of
    one run) against the fold-to-fold std of 5-fold cross-validation (3 CV seeds);
(b) test AUC of one run vs a 5-seed ensemble vs a 5-fold ensemble (paired bootstrap on the same test images);
(c) TTA on / off (evaluate --tta 8 on the 5 single runs, paired);
(d) train.pos_weight=auto and train.sampler=balanced vs neither (3 seeds each, paired on seed-averaged predictions);
(e) BreastMNIST only, the thesis question in miniature: mode 1 without a colorizer vs mode 1 ColorU vs mode 2
    fine-tuning at 100 / 250 / all training images (data.subset), 5-fold CV, compared on the pooled out-of-fold
    predictions (paired bootstrap) and with the corrected resampled t-test over folds.
Every setting is a shipped recipe as it is (demo on the NIH sample, medmnist-finetune on BreastMNIST; (e)'s mode-1
rows are the demo recipe on BreastMNIST), chosen on validation in issue 31; nothing here is chosen on these numbers.
Each command runs through the `medcolor` command line; its stdout goes to OUT/log.txt, timings to OUT/timing.json."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

MEDCOLOR = [sys.executable, "-m", "medcolor"]
BREAST = ["data.spec=medmnist", "data.root=package:samples/breastmnist", "data.name=breastmnist", "data.size=28",
          "train.image_size=32"]
DATASETS = {"breastmnist": ("medmnist-finetune", BREAST), "nih": ("demo", [])}
SIZES = {"100": 100 / 546, "250": 250 / 546, "all": 1.0}  # BreastMNIST's 546 training images
THESIS_ROWS = {"mode1-none": ("demo", BREAST + ["model.colorizer=none"]),  # mode 1 without a colorizer
               "mode1-coloru": ("demo", BREAST),                            # mode 1, ColorU
               "mode2-none": ("medmnist-finetune", BREAST)}                 # mode 2 fine-tuning


def medcolor(out: Path, *args: str) -> str:
    line = "$ medcolor " + " ".join(args)
    print(line, flush=True)
    start = time.time()
    done = subprocess.run([*MEDCOLOR, *args], capture_output=True, text=True)
    seconds = time.time() - start
    with open(out / "log.txt", "a") as log:
        log.write(f"{line}\n{done.stdout}\n[{seconds:.1f} s, exit {done.returncode}]\n")
    if done.returncode:
        sys.exit(f"failed ({done.returncode}): {done.stderr.strip().splitlines()[-1]}")
    timing = json.loads((out / "timing.json").read_text()) if (out / "timing.json").is_file() else []
    (out / "timing.json").write_text(json.dumps(timing + [{"command": " ".join(args), "seconds": seconds}], indent=1))
    return done.stdout


def runs_of(out: Path, name: str) -> Path:
    return out / "runs" / name


def run(out: Path, only: str, datasets: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for data in datasets:
        recipe, overrides = DATASETS[data]
        if set(only) & set("abc"):
            medcolor(out, "run", "recipe", recipe, *overrides, "--seeds", "5", "--quiet",
                     "--runs-dir", str(runs_of(out, f"{data}-single")))
            medcolor(out, "run", "recipe", recipe, *overrides, "--folds", "5", "--seeds", "3", "--quiet",
                     "--runs-dir", str(runs_of(out, f"{data}-cv")))
        if "c" in only:
            for run_dir in sorted(p.parent for p in runs_of(out, f"{data}-single").rglob("best.pth")):
                if not (run_dir / "eval-test-tta8").exists():
                    medcolor(out, "evaluate", str(run_dir), "--tta", "8")
                    if not (run_dir / "eval-test").exists():
                        medcolor(out, "evaluate", str(run_dir))
        if "d" in only:
            for name, extra in (("pos_weight", ["train.pos_weight=auto"]), ("balanced", ["train.sampler=balanced"])):
                medcolor(out, "run", "recipe", recipe, *overrides, *extra, "--seeds", "3", "--quiet",
                         "--runs-dir", str(runs_of(out, f"{data}-{name}")))
    if "e" in only and "breastmnist" in datasets:
        for size, fraction in SIZES.items():
            for row, (recipe, overrides) in THESIS_ROWS.items():
                medcolor(out, "run", "recipe", recipe, *overrides, f"data.subset.fraction={fraction}", "--folds", "5",
                         "--quiet", "--runs-dir", str(runs_of(out, f"thesis-{size}-{row}")))


def speed(out: Path) -> None:
    """predict with one member vs an ensemble of 5 on the NIH sample's 1,000 images, back to back (3 repeats)."""
    members = sorted(p.parent for p in runs_of(out, "nih-single").rglob("best.pth"))[:5]
    (ensemble,) = runs_of(out, "nih-single").glob("*/*-ensemble")
    images = str(Path(__file__).resolve().parents[1] / "app" / "medcolor" / "samples" / "nih-cxr14-sample" / "images")
    rows = []
    for repeat in range(3):
        for what, model in (("1 run", members[0]), ("ensemble of 5", ensemble)):
            start = time.time()
            medcolor(out, "predict", str(model), images, "--out", str(out / f"speed-{what[0]}-{repeat}.csv"))
            rows.append({"model": what, "repeat": repeat, "seconds": round(time.time() - start, 2)})
    (out / "speed.json").write_text(json.dumps(rows, indent=1))
    print(json.dumps(rows, indent=1))


def table(out: Path) -> None:
    from medcolor.results.compare import compare_runs
    from medcolor.results.report import find_runs
    from medcolor.core.runfolder import read_metrics

    for data in DATASETS:
        single = sorted(find_runs([runs_of(out, f"{data}-single")]))
        if not single:
            continue
        tests = [read_metrics(r)["mean_auc"] for r in single]
        widths = [read_metrics(r)["mean_auc_ci95"] for r in single]
        cvs = sorted(runs_of(out, f"{data}-cv").glob("*/*-cv5"))
        cv = [read_metrics(c) for c in cvs]
        (seeds,) = runs_of(out, f"{data}-single").glob("*/*-ensemble")
        print(f"\n### {data}\n")
        print(f"(a) single split, 5 seeds: test mean AUC {_ms(tests)}; one run's bootstrap 95 % CI "
              f"{_mean([w[1] - w[0] for w in widths]):.3f} wide on average")
        for c, folder in zip(cv, cvs):
            print(f"    5-fold CV seed {c['seed']}: fold models on test {c['fold_test_auc_mean']:.4f} ± "
                  f"{c['fold_test_auc_std']:.4f}; out-of-fold per fold {c['fold_valid_auc_mean']:.4f} ± "
                  f"{c['fold_valid_auc_std']:.4f}; pooled out-of-fold {c['oof']['mean_auc']:.4f} "
                  f"[{c['oof']['mean_auc_ci95'][0]:.3f}, {c['oof']['mean_auc_ci95'][1]:.3f}]")
        print(f"(b) one run (seed 0) {tests[0]:.4f}; 5-seed ensemble {read_metrics(seeds)['mean_auc']:.4f}; 5-fold "
              f"ensembles {_ms([c['ensemble']['mean_auc'] for c in cv])}")
        for name, folder in (("5-seed ensemble", seeds), *((f"5-fold ensemble (CV seed {c['seed']})", f)
                                                           for c, f in zip(cv, cvs))):
            print(f"    {name} - run seed 0: {_diff(compare_runs(folder, single[0]))}")
        with_tta = [compare_runs(r / "eval-test-tta8", r / "eval-test") for r in single
                    if (r / "eval-test-tta8").exists()]
        if with_tta:
            print("(c) TTA x 8 - none, per seed: " + "; ".join(_diff(c) for c in with_tta))
        for name in ("pos_weight", "balanced"):
            other = sorted(find_runs([runs_of(out, f"{data}-{name}")])) if runs_of(out, f"{data}-{name}").exists() \
                else []
            if other:
                scores = [read_metrics(r)["mean_auc"] for r in other]
                paired = [_diff(compare_runs(o, s)) for o, s in zip(other, single)]
                print(f"(d) {name}: test {_ms(scores)} vs {_ms(tests[:3])}; paired per seed: {'; '.join(paired)}; "
                      f"seed-averaged predictions: {_averaged_diff(other, single[:3])}")
    thesis = sorted(runs_of(out, "").glob("thesis-*"))
    if thesis:
        print("\n### (e) BreastMNIST, 5-fold CV\n")
        for folder in thesis:
            (cv_dir,) = folder.glob("*/*-cv5")
            m = read_metrics(cv_dir)
            print(f"{folder.name}: pooled OOF {m['oof']['mean_auc']:.4f} [{m['oof']['mean_auc_ci95'][0]:.3f}, "
                  f"{m['oof']['mean_auc_ci95'][1]:.3f}], per fold {m['fold_valid_auc_mean']:.4f} ± "
                  f"{m['fold_valid_auc_std']:.4f}, test: folds {m['fold_test_auc_mean']:.4f} ± "
                  f"{m['fold_test_auc_std']:.4f}, ensemble {m['ensemble']['mean_auc']:.4f}")
        by_size = {}
        for folder in thesis:
            by_size.setdefault(folder.name.split("-")[1], []).append(next(folder.glob("*/*-cv5")))
        for size, folders in by_size.items():
            names = {f: f.parent.parent.name.split("-", 2)[2] for f in folders}
            for a in folders:
                for b in folders:
                    if names[a] > names[b]:
                        c = compare_runs(a, b)
                        f = c["fold_test"]
                        print(f"{size}: {names[a]} - {names[b]}: OOF {_diff(c)}; corrected t over folds "
                              f"{f['mean_diff']:+.4f}, p {f['p']:.3f}")


def _averaged_diff(runs_a, runs_b) -> str:
    """A - B on the seed-averaged test predictions (report --vs's comparison), paired bootstrap over patients."""
    from medcolor.results.compare import aligned
    from medcolor.results.report import averaged_predictions
    from medcolor.tasks.stats import paired_comparison

    labels, a = averaged_predictions([str(r) for r in runs_a])
    _, b = averaged_predictions([str(r) for r in runs_b])
    t, p_a, p_b, groups = aligned(a, b, labels)
    return _diff(paired_comparison(t, p_a, p_b, labels, groups))


def _mean(xs) -> float:
    return sum(xs) / len(xs)


def _ms(xs) -> str:
    import numpy as np
    return f"{np.mean(xs):.4f} ± {np.std(xs, ddof=1):.4f}" if len(xs) > 1 else f"{xs[0]:.4f}"


def _diff(c: dict) -> str:
    m = c["mean"]
    return f"{m['diff']:+.4f} [{m['ci95'][0]:+.3f}, {m['ci95'][1]:+.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("run", "table", "speed"))
    parser.add_argument("out", type=Path)
    parser.add_argument("--only", default="abcde")
    parser.add_argument("--datasets", default="breastmnist,nih")
    a = parser.parse_args()
    if a.what == "run":
        run(a.out, a.only, a.datasets.split(","))
    elif a.what == "speed":
        speed(a.out)
    else:
        table(a.out)


if __name__ == "__main__":
    main()
