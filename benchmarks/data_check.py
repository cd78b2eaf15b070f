"""`medcolor data check` and `data cache` on a 30,000-image CheXpert-layout set (320 x 390 JPEGs, the size of
CheXpert-v1.0-small's): peak memory (the process's largest resident set) and time, each in a fresh process.

The images are hard links to 50 distinct generated radiograph-like JPEGs, so writing the set is quick while every
file is decoded for real. Usage: python benchmarks/data_check.py [N_IMAGES]   (default 30000)
"""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fixtures import CHEXPERT_COLUMNS  # noqa: E402


def make_set(tmp: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    sources = []
    for k in range(50):
        yy, xx = np.mgrid[:390, :320]
        a = 128 + 60 * np.sin(xx / (20 + k)) * np.cos(yy / 30) + rng.normal(0, 12, (390, 320))
        sources.append(tmp / f"src{k}.jpg")
        Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(sources[-1], quality=90)
    root = tmp / "CheXpert-v1.0-small"
    rows = []
    for i in range(n):
        rel = f"CheXpert-v1.0-small/train/patient{i // 3:05d}/study1/view{i % 3 + 1}_frontal.jpg"
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        os.link(sources[i % 50], tmp / rel)
        rows.append({"Path": rel, "Frontal/Lateral": "Frontal"})
    df = pd.DataFrame(rows).reindex(columns=CHEXPERT_COLUMNS)
    df[CHEXPERT_COLUMNS[5:]] = 0.0
    df.to_csv(root / "train.csv", index=False)
    df.head(30).to_csv(root / "valid.csv", index=False)
    return root


def measured(args: list[str], env: dict) -> tuple[float, float]:
    """(seconds, peak resident MiB) of `medcolor ARGS` in a fresh process."""
    code = ("import resource, sys; from medcolor.cli import main; c = main(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr); sys.exit(c)")
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - start, float(run.stderr.strip().splitlines()[-1])


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30_000
    with tempfile.TemporaryDirectory() as tmp:
        root = make_set(Path(tmp), n)
        env = {**os.environ, "MEDCOLOR_CACHE_DIR": str(Path(tmp) / "cache")}
        print(f"{n:,} images of 320 x 390; load {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores")
        for what, args in (("data check", ["data", "check", "chexpert", "--root", str(root)]),
                           ("data cache --size 64", ["data", "cache", "chexpert", "--root", str(root), "--size", "64"])):
            seconds, peak = measured(args, env)
            print(f"{what:<22} {seconds:7.1f} s   peak {peak:6.0f} MiB   {n / seconds:6.0f} images/s")
