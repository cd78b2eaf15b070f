"""The MedMNIST recipes on real radiographs: the bundled NIH sample (1,000 images, 64 px) written as a ChestMNIST
file at 64 px (`chestmnist_64.npz`: its 14 findings, the sample's patient split as train / val, the official test
list as test), then `medmnist-linear-probe` and `medmnist-finetune` with 3 seeds each and `report`.

Usage: python benchmarks/medmnist_from_sample.py OUT_DIR   (runs go to OUT_DIR/runs; about 10 min on 2 cores)
"""
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from medcolor.data.medmnist import DATASETS
from medcolor.data.readers import read_table
from medcolor.data.specs import load_data_config


def write_chestmnist(root: Path) -> Path:
    table = read_table(load_data_config("nih-sample", ["labels=all14", "any_finding=false"]))
    names = DATASETS["chestmnist"][2]
    arrays = {}
    for split, prefix in (("train", "train"), ("valid", "val"), ("test", "test")):
        rows = table.split(split)
        arrays[f"{prefix}_images"] = np.stack([np.asarray(Image.open(p).convert("L").resize((64, 64)))
                                               for p in rows["path"]])
        arrays[f"{prefix}_labels"] = rows[table.labels].to_numpy(np.uint8)
    assert [lab.lower() for lab in table.labels] == [n.replace("pleural", "pleural_thickening") for n in names]
    root.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(root / "chestmnist_64.npz", **arrays)
    return root


if __name__ == "__main__":
    out = Path(sys.argv[1])
    root = write_chestmnist(out / "medmnist")
    medcolor = str(Path(sys.executable).parent / "medcolor")
    data = [f"data.root={root}", "data.name=chestmnist", "data.size=64", "train.image_size=64"]
    for recipe in ("medmnist-linear-probe", "medmnist-finetune"):
        for colorizer in ("none", "coloru"):
            subprocess.run([medcolor, "run", "recipe", recipe, *data, f"model.colorizer={colorizer}", "--seeds", "3",
                            "--runs-dir", str(out / "runs"), "--quiet"], check=True)
    subprocess.run([medcolor, "report", str(out / "runs")], check=True)
