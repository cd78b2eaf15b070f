import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
SAMPLE = Path(__file__).resolve().parents[1] / "app" / "medcolor" / "samples" / "nih-cxr14-sample"


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLE


@pytest.fixture(scope="session")
def real_batch():
    """8 real NIH radiographs (64x64, gray, CheXpert-normalised) and 5 thesis labels."""
    import numpy as np
    import pandas as pd
    import torch
    from PIL import Image

    df = pd.read_csv(SAMPLE / "Data_Entry_2017.csv").head(8)
    imgs = [np.asarray(Image.open(SAMPLE / "images" / f).convert("L"), dtype=np.float32) / 255 for f in df["Image Index"]]
    x = (torch.tensor(np.stack(imgs))[:, None] - 0.5028) / 0.2902
    labels = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion"]
    y = torch.tensor([[float(lab in f.split("|")) for lab in labels] for f in df["Finding Labels"]])
    return x, y


TINY_DEMO = ["train.epochs=1", "train.image_size=32", "train.bs=64", "train.lr_find=false"]


@pytest.fixture(scope="session")
def demo_runs(tmp_path_factory):
    """Three finished tiny demo runs (seeds 0, 1, 2) in one runs folder, shared by the result-reading tests."""
    from medcolor.training.train import run_recipe

    runs_dir = tmp_path_factory.mktemp("runs")
    results = run_recipe("demo", TINY_DEMO, n_seeds=3, runs_dir=runs_dir, quiet=True)
    return runs_dir, [Path(r["run_dir"]) for r in results]
