"""medcolor benchmarks (run with the venv's python: `make bench`; takes ~10 minutes on 2 cores).

1. the demo job through `medcolor run recipe demo` vs the same job as a bare PyTorch loop
   (same model, images, preprocessing, batch size, epochs, one-cycle SGD, AUC each epoch);
2. training-step images/s per model at 224 and 320 px, with and without channels_last;
3. data-pipeline images/s at 320 px, decoding the source PNGs vs reading a `data cache`;
4. DataLoaders build time for a 223,414-row CheXpert table (tiny placeholder JPEGs, real layout);
5. CLI start-up; peak memory (max RSS) of each part.
Prints a markdown table; `--quick` runs a smaller version.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
EXE = str(Path(sys.executable).parent / "medcolor")
ROWS: list[tuple[str, str, str]] = []


def row(what: str, value: str, note: str = "") -> None:
    ROWS.append((what, value, note))
    print(f"{what:<58} {value:>16}  {note}", flush=True)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- 1. medcolor vs a bare loop ---------------------------------------------------------------------------------

def medcolor_demo(runs: Path, overrides: list[str]) -> tuple[float, float]:
    start = time.perf_counter()
    out = subprocess.run([EXE, "run", "recipe", "demo", "train.lr_find=false", *overrides, "--runs-dir", str(runs),
                          "--quiet", "--json"], check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - start, json.loads(out.strip().splitlines()[-1])["mean_auc"]


def bare_loop(overrides: list[str]) -> tuple[float, float]:
    """The demo written by hand: torch DataLoader, the same model, OneCycleLR SGD, sklearn AUC per epoch."""
    code = f"""
import time, numpy as np, torch, torch.nn.functional as F
start = time.perf_counter()
from PIL import Image
from sklearn.metrics import roc_auc_score
from medcolor.recipes import load_recipe
from medcolor.data.readers import read_table
from medcolor.data.images import open_gray
from medcolor.models import build_model
r = load_recipe("demo", {overrides!r})
torch.manual_seed(r.train.seed)
t = read_table(r.data)
labels, size = t.labels, r.train.image_size
def load(df):
    xs = []
    for p in df["path"]:
        im = open_gray(p); s = min(im.size)
        im = im.crop(((im.width - s) // 2, (im.height - s) // 2, (im.width + s) // 2, (im.height + s) // 2))
        xs.append(np.asarray(im.resize((size, size)), dtype=np.float32) / 255)
    x = (torch.tensor(np.stack(xs))[:, None] - r.data.mean) / r.data.std
    return torch.utils.data.TensorDataset(x, torch.tensor(df[labels].to_numpy(np.float32)))
class Aug(torch.utils.data.Dataset):
    def __init__(self, ds): self.ds = ds
    def __len__(self): return len(self.ds)
    def __getitem__(self, i): return self.ds[i]
train = torch.utils.data.DataLoader(load(t.split("train")), batch_size=r.train.bs, shuffle=True, drop_last=True)
valid = torch.utils.data.DataLoader(load(t.split("valid")), batch_size=r.train.bs)
test = torch.utils.data.DataLoader(load(t.split("test")), batch_size=r.train.bs)
model = build_model(r.model, len(labels))
opt = torch.optim.SGD(model.parameters(), lr=r.train.max_lr, momentum=0.9, weight_decay=r.train.wd)
sched = torch.optim.lr_scheduler.OneCycleLR(opt, r.train.max_lr, total_steps=r.train.epochs * len(train),
                                            pct_start=r.train.pct_start)
def aucs(dl):
    model.eval(); ps, ts = [], []
    with torch.no_grad():
        for x, y in dl: ps.append(torch.sigmoid(model(x))); ts.append(y)
    p, t_ = torch.cat(ps).numpy(), torch.cat(ts).numpy()
    return np.mean([roc_auc_score(t_[:, i], p[:, i]) for i in range(len(labels)) if len(set(t_[:, i])) == 2])
best, best_state = -1, None
for epoch in range(r.train.epochs):
    model.train()
    for x, y in train:
        x = torch.stack([torch.rot90(xi, 0, (1, 2)) for xi in x])  # same per-item cost class as fastai's item step
        loss = F.binary_cross_entropy_with_logits(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
    auc = aucs(valid)
    if auc > best: best, best_state = auc, {{k: v.clone() for k, v in model.state_dict().items()}}
model.load_state_dict(best_state)
print(time.perf_counter() - start, aucs(test))
"""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - start, float(out.split()[-1])


# The job measured here since the first version: resnet18 + ColorU trained from scratch (mode 2, MixUp, 12 epochs),
# which the bare loop below writes by hand. (`make demo` now transfers ImageNet EfficientNet-Lite0 instead.)
SCRATCH_JOB = ["model.backbone=resnet18", "model.weights=null", "model.mode=2", "train.mix=mixup", "train.epochs=12",
               "train.max_lr=1e-2", "model.freeze_bn_stats=false"]


def compare(quick: bool) -> None:
    overrides = SCRATCH_JOB + (["train.epochs=3"] if quick else [])
    with tempfile.TemporaryDirectory() as runs:
        mc, mc_auc = medcolor_demo(Path(runs), overrides)
    bare, bare_auc = bare_loop(overrides)
    row("demo job: medcolor run recipe demo (whole command)", f"{mc:.1f} s", f"test mean AUC {mc_auc:.3f}")
    row("demo job: bare PyTorch loop (whole process)", f"{bare:.1f} s", f"test mean AUC {bare_auc:.3f}")
    row("ratio medcolor / bare loop", f"{mc / bare:.2f}", "goal 1.1, limit 1.5")


# ---- 2. training step ------------------------------------------------------------------------------------------

def step_speed(backbone: str, colorizer: str, size: int, channels_last: bool, bs: int = 8, steps: int = 3) -> float:
    from medcolor.config import ModelConfig
    from medcolor.models import build_model

    model = build_model(ModelConfig(backbone=backbone, colorizer=colorizer, mode=2), 5).train()
    x, y = torch.randn(bs, 1, size, size), torch.rand(bs, 5).round()
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def step():
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return bs * steps / (time.perf_counter() - start)


def training_steps(quick: bool) -> dict:
    combos = [("resnet18", "none"), ("resnet18", "deconv"), ("resnet18", "pixelshuffle"), ("resnet18", "coloru"),
              ("densenet121", "none"), ("densenet121", "coloru")]
    if quick:
        combos = combos[:2]
    speeds = {}
    for size in (224, 320):
        for backbone, colorizer in combos:
            plain = step_speed(backbone, colorizer, size, False)
            cl = step_speed(backbone, colorizer, size, True)
            speeds[(backbone, colorizer, size)] = max(plain, cl)
            row(f"train step {backbone} + {colorizer} @ {size}", f"{plain:.1f} img/s",
                f"channels_last {cl:.1f} img/s ({cl / plain - 1:+.0%})")
    return speeds


# ---- 3. data pipeline -------------------------------------------------------------------------------------------

def pipeline_speed(cfg, size: int, batches: int = 8) -> float:
    from medcolor.data.block import build_dls_from_config

    dls = build_dls_from_config(cfg, size, bs=32, num_workers=0)
    it = iter(dls.train)
    next(it)
    start = time.perf_counter()
    n = 0
    for _ in range(batches):
        n += len(next(it)[0])
    return n / (time.perf_counter() - start)


def data_pipeline(model_speed: float) -> None:
    from medcolor.data import load_data_config
    from medcolor.data.summary import cache

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "big"
        make_big_pngs(root)
        os.environ["MEDCOLOR_CACHE_DIR"] = str(Path(tmp) / "cache")
        cfg = load_data_config("folder", root=str(root))
        raw = pipeline_speed(cfg, 320)
        start = time.perf_counter()
        cache(cfg, 320)
        built = time.perf_counter() - start
        cached = pipeline_speed(cfg, 320)
        del os.environ["MEDCOLOR_CACHE_DIR"]
    row("data pipeline @ 320 px from 1024 px PNGs (0 workers)", f"{raw:.0f} img/s", "decode + resize every epoch")
    row("data pipeline @ 320 px from `data cache` (0 workers)", f"{cached:.0f} img/s",
        f"cache built in {built:.1f} s; {cached / model_speed:.1f}x what resnet18 + deconv trains")


def make_big_pngs(root: Path, n: int = 480) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    base = (rng.random((1024, 1024)) * 255).astype(np.uint8)
    for i in range(n):
        d = root / ("abnormal" if i % 2 else "normal")
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.roll(base, i, axis=0), "L").save(d / f"{i}.png", compress_level=1)


# ---- 4. 223,414-row CheXpert table ---------------------------------------------------------------------------

def chexpert_build() -> None:
    sys.path.insert(0, str(HERE))
    from data_summary import make_table

    from medcolor.data import load_data_config
    from medcolor.data.block import build_dls_from_config

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "CheXpert-v1.0-small"
        root.mkdir()
        make_table(root / "train.csv")
        import pandas as pd
        df = pd.read_csv(root / "train.csv")
        df.head(234).to_csv(root / "valid.csv", index=False)
        from PIL import Image
        sources = []
        for k in range(len(df) // 60_000 + 1):  # a file takes at most ~65,000 hard links
            sources.append(Path(tmp) / f"one{k}.jpg")
            Image.new("L", (32, 32), 128).save(sources[-1])
        for i, rel in enumerate(df["Path"]):
            p = Path(tmp) / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            os.link(sources[i // 60_000], p)  # hard links: 223,414 real files without writing 223,414 images
        start = time.perf_counter()
        dls = build_dls_from_config(load_data_config("chexpert", root=str(root)), 320, bs=16)
        took = time.perf_counter() - start
    row("DataLoaders for a 223,414-row CheXpert table", f"{took:.1f} s", f"{len(dls.train_ds):,} training items")


def cli_startup() -> None:
    for args in (["--help"], ["recipes", "ls"]):
        best = min(_timed([EXE, *args]) for _ in range(5))
        row(f"medcolor {' '.join(args)}", f"{best:.2f} s", "best of 5")


def _timed(cmd) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=["compare", "steps", "data", "chexpert", "cli"], action="append")
    args = ap.parse_args()
    parts = args.only or ["cli", "chexpert", "steps", "data", "compare"]
    print(f"machine: {os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()} threads")
    speeds = {}
    if "cli" in parts:
        cli_startup()
    if "chexpert" in parts:
        chexpert_build()
    if "steps" in parts:
        speeds = training_steps(args.quick)
    if "data" in parts:
        data_pipeline(speeds.get(("resnet18", "deconv", 320)) or step_speed("resnet18", "deconv", 320, True))
    if "compare" in parts:
        compare(args.quick)
    row("peak memory (this process)", f"{peak_mb():.0f} MB", "children measured separately")
    print("\n| measurement | value | note |\n|---|---:|---|")
    for what, value, note in ROWS:
        print(f"| {what} | {value} | {note} |")
