"""`medcolor data summary chexpert` on a 223,414-row table in the CheXpert-v1.0-small layout (no images needed).

The real label values are not shipped; the table has the real size and column layout with random values.
"""
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fixtures import CHEXPERT_COLUMNS  # noqa: E402

N = 223_414


def make_table(path: Path) -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({c: rng.choice([1.0, 0.0, -1.0, np.nan], N) for c in CHEXPERT_COLUMNS[5:]})
    df.insert(0, "Path", [f"CheXpert-v1.0-small/train/patient{i // 3:05d}/study1/view{i % 3 + 1}_frontal.jpg"
                          for i in range(N)])
    df.insert(1, "Sex", "Female")
    df.insert(2, "Age", 60)
    df.insert(3, "Frontal/Lateral", "Frontal")
    df.insert(4, "AP/PA", "AP")
    df.to_csv(path, index=False)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "CheXpert-v1.0-small" / "train.csv"
        csv.parent.mkdir()
        make_table(csv)
        exe = str(Path(sys.executable).parent / "medcolor")
        for args in ([], ["subset.fraction=0.1", "subset.seed=8"]):
            start = time.perf_counter()
            out = subprocess.run([exe, "data", "summary", "chexpert", "--csv", str(csv), *args, "--json"],
                                 check=True, capture_output=True, text=True).stdout
            print(f"data summary {' '.join(args) or '(full table)':<32} {time.perf_counter() - start:.2f} s  {out.strip()[:90]}")
