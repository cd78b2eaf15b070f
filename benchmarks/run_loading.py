"""Loading a run for prediction when it was trained on 200,000 images.

A tiny demo-architecture run is trained on a 40-image csv dataset; then its label table is replaced by a
200,000-row one whose rows are hard links to the sample's real 64 px radiographs (so the old path can run too).
Timed, back to back, on the same run folder:

- `runs.load_model`: what predict / export / evaluate / interpret use now (model.json + best.pth, no data read);
- `learner.build_data` + `checkpoint_learner`: what every result command did before (read the table, check every
  file, decode train + valid into RAM) - the cost a model that needed its training data paid at each use;
- `medcolor predict RUN IMAGE` end to end in a fresh process (imports included).

Usage: python benchmarks/run_loading.py [N_IMAGES]   (default 200000)
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

SAMPLE = Path(__file__).resolve().parents[1] / "app" / "medcolor" / "samples" / "nih-cxr14-sample" / "images"


def small_dataset(root: Path, n: int) -> pd.DataFrame:
    """labels.csv for `n` images, each a hard link to one of the sample's radiographs."""
    sources = sorted(SAMPLE.glob("*.png"))
    (root / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        rel = f"img/{i // 1000:04d}/{i:07d}.png"
        (root / rel).parent.mkdir(exist_ok=True)
        os.link(sources[i % len(sources)], root / rel)
        rows.append({"path": rel, "finding": float(i % 3 == 0), "split": "test" if i % 10 == 9 else "train"})
    frame = pd.DataFrame(rows)
    frame.to_csv(root / "labels.csv", index=False)
    return frame


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main(n: int) -> None:
    from medcolor.training.learner import build_data, checkpoint_learner
    from medcolor.training.runs import load_model, read_recipe
    from medcolor.training.train import run_recipe

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        small_dataset(root, 40)
        run = run_recipe("demo", ["data.spec=csv", f"data.root={root}", "data.labels=[finding]", "train.epochs=1",
                                  "train.image_size=32", "train.lr_find=false"], runs_dir=Path(tmp) / "runs",
                         quiet=True)[0]["run_dir"]
        shutil.rmtree(root)
        made, _ = timed(lambda: small_dataset(root, n))
        print(f"{n:,} training images (hard links) and their table written in {made:.0f} s; load {os.getloadavg()[0]:.1f}")

        new, _ = timed(lambda: load_model(run))
        print(f"runs.load_model (model.json + best.pth):          {new:6.2f} s")
        recipe = read_recipe(run)
        old, _ = timed(lambda: checkpoint_learner(recipe, build_data(recipe)[0]))
        print(f"build_data + checkpoint_learner (the old path):   {old:6.2f} s   ({old / new:.0f}x)")
        exe = str(Path(sys.executable).parent / "medcolor")
        image = str(next(SAMPLE.glob("*.png")))
        cli, _ = timed(lambda: subprocess.run([exe, "predict", run, image], check=True, capture_output=True))
        print(f"medcolor predict RUN IMAGE, fresh process:          {cli:6.2f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
