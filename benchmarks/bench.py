"""medcolor benchmarks (run with the venv's python: `make bench`; ~30 minutes on 2 cores, more with --seeds).

1. compare: whole `medcolor run recipe` commands vs the same jobs as bare PyTorch loops (bare_loops.py), back to
   back: the demo, the first version's scratch job, a 4,000-image folder dataset and an IXI-like reconstruction,
   3 epochs each, with the test score of both sides (`--seeds N`: N pairs, fastest time, mean score); on a GPU
   also resnet18 + deconv and densenet121 + pixelshuffle at 320 px in bf16;
2. steps: training-step images/s per model at 224 and 320 px, with and without channels_last;
3. data: images/s at 320 px from 1024 px PNGs: in RAM, decoded every epoch, from a `data cache`;
4. chexpert: DataLoaders build time for a 223,414-row CheXpert table (tiny placeholder JPEGs, real layout);
5. cli: start-up; peak memory (max RSS);
6. replay: the demo and the reconstruction trained by medcolor and replayed, batch for batch, by a hand-written
   loop (equal weights);
7. scale: the thesis Table 5.1 sweep's wall time on one device and on 8 (`--shard`), from measured images/s.
Prints a markdown table; `--quick` runs a smaller version, `--only PART` one part.
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

# The job measured since the first version: resnet18 + ColorU from scratch (mode 2, MixUp); `make demo` transfers
# ImageNet EfficientNet-Lite0 (mode 1) instead. Both run 3 epochs here: short runs show fixed costs most.
SCRATCH_JOB = ["model.backbone=resnet18", "model.weights=null", "model.mode=2", "train.mix=mixup", "train.max_lr=1e-2",
               "model.freeze_bn_stats=false"]
IXI_SLICES, IXI_SIZE = "15:25", 128
GPU_JOBS = [("resnet18", "deconv"), ("densenet121", "pixelshuffle")]


def medcolor_job(recipe: str, overrides: list[str], runs: Path) -> dict:
    start = time.perf_counter()
    out = subprocess.run([EXE, "run", "recipe", recipe, *overrides, "--runs-dir", str(runs), "--quiet", "--json"],
                         check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return {"seconds": time.perf_counter() - start, "score": result.get("mean_auc") or result["psnr"]["mean"]}


def bare_job(kind: str, recipe: str, overrides: list[str]) -> dict:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, str(HERE / "bare_loops.py"), kind, recipe, *overrides], check=True,
                         capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return {"seconds": time.perf_counter() - start, "score": result.get("mean_auc", result.get("psnr")),
            "images": result["train_images"]}


def tax(name: str, kind: str, recipe: str, overrides: list[str], limit: float, seeds: int) -> None:
    """medcolor and the bare loop back to back, whole processes, once per seed: the fastest time of each side and
    the test score's mean over the seeds (one seed's AUC on 200 test images moves by +-0.05), with a 95 % interval
    of the difference of the two means (independent samples: the sides draw different random numbers)."""
    pairs = []
    for seed in range(seeds):
        job = [*overrides, f"train.seed={seed}"]
        with tempfile.TemporaryDirectory() as runs:
            pairs.append((medcolor_job(recipe, job, Path(runs)), bare_job(kind, recipe, job)))
    sides = {side: {"seconds": min(p[i]["seconds"] for p in pairs), "scores": [p[i]["score"] for p in pairs]}
             for i, side in enumerate(("medcolor run", "bare PyTorch loop"))}
    images, what = pairs[0][1]["images"], "test mean AUC" if kind == "classify" else "test PSNR"
    for side, r in sides.items():
        spread = f" +- {np.std(r['scores'], ddof=1):.3f} sd over {seeds} seeds" if seeds > 1 else ""
        row(f"{name}: {side}", f"{r['seconds']:.1f} s",
            f"{images / r['seconds']:.0f} img/s; {what} {np.mean(r['scores']):.3f}{spread}")
    mc, bare = (np.array(r["scores"]) for r in sides.values())
    row(f"{name}: ratio", f"{sides['medcolor run']['seconds'] / sides['bare PyTorch loop']['seconds']:.2f}",
        f"limit {limit}; {what} difference {mc.mean() - bare.mean():+.3f}{difference_interval(mc, bare)}")
    if seeds > 1:
        print(f"  {what} per seed: medcolor {np.round(mc, 3).tolist()}; bare {np.round(bare, 3).tolist()}", flush=True)


def difference_interval(a: np.ndarray, b: np.ndarray) -> str:
    """Welch's t interval (scipy). A bootstrap of 5-10 values per side is too narrow: resampling so few values
    understates their spread (5 seeds gave a bootstrap interval of -5.1 .. -0.5 dB where Welch's is -6.0 .. +0.5)."""
    if min(len(a), len(b)) < 3:
        return ""
    from scipy.stats import ttest_ind

    ci = ttest_ind(a, b, equal_var=False).confidence_interval()
    return f" (95 % CI {ci.low:+.3f} .. {ci.high:+.3f})"


def compare(quick: bool, seeds: int, jobs: list[str] | None) -> None:
    epochs = ["train.epochs=1" if quick else "train.epochs=3"]
    n_sources = 250 if quick else 1000
    with tempfile.TemporaryDirectory() as tmp:
        folder, ixi = make_folder_dataset(Path(tmp) / "xrays", n_sources), make_ixi(Path(tmp) / "IXI")
        table = {
            "demo": ("demo (EfficientNet-Lite0 ImageNet, mode 1)", "classify", "demo", epochs, 1.2),
            "scratch": ("scratch job (resnet18 + ColorU, mode 2, MixUp)", "classify", "demo", SCRATCH_JOB + epochs,
                        1.2),
            "folder": (f"folder dataset ({4 * n_sources:,} PNGs, 128 px)", "classify", "demo",
                       ["data.spec=folder", f"data.root={folder}", *epochs], 1.15),
            "reconstruction": ("reconstruction (ae-small, 40 IXI-like volumes)", "reconstruct", "ixi-ae-small-mse",
                               [f"data.root={ixi}", f"data.slices={IXI_SLICES}", f"train.image_size={IXI_SIZE}",
                                *epochs], 1.3)}
        for backbone, colorizer in GPU_JOBS:  # 320 px, bf16, channels_last: what a GPU user runs
            table[f"gpu-{backbone}-{colorizer}"] = (
                f"GPU: {backbone} + {colorizer} @ 320 px, bf16", "classify", "demo",
                ["data.spec=folder", f"data.root={folder}", f"model.backbone={backbone}", f"model.colorizer={colorizer}",
                 "model.weights=null", "model.mode=2", "train.image_size=320", "train.bf16=true", *epochs], 1.2)
        gpu = torch.cuda.is_available()
        for job in jobs or [j for j in table if gpu or not j.startswith("gpu-")]:
            tax(*table[job], seeds)


def replay_check(quick: bool) -> None:
    """bare_loops.py replay: medcolor's own training loop and a hand-written one on the same batches and weights,
    for the demo (SGD, one-cycle, frozen body) and the reconstruction (RMSprop, ReduceLROnPlateau, denoising)."""
    epochs = "train.epochs=1" if quick else "train.epochs=3"
    with tempfile.TemporaryDirectory() as tmp:
        ixi = make_ixi(Path(tmp) / "IXI")
        for name, recipe, overrides in (
                ("demo", "demo", []),
                ("reconstruction", "ixi-ae-small-mse",
                 [f"data.root={ixi}", f"data.slices={IXI_SLICES}", f"train.image_size={IXI_SIZE}"])):
            out = subprocess.run([sys.executable, str(HERE / "bare_loops.py"), "replay", recipe, *overrides, epochs],
                                 check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            same = r["fastai_valid"] == r["plain_valid"]
            row(f"{name} replayed by a plain loop: largest weight difference", f"{r['max_weight_difference']:.1e}",
                f"{r['steps']} steps; valid {r['monitor']} per epoch {'identical' if same else 'differs'}: "
                + " / ".join(f"{a:.3f} vs {b:.3f}" for a, b in zip(r["fastai_valid"], r["plain_valid"])))


def make_folder_dataset(root: Path, n_sources: int) -> Path:
    """4 PNGs (128 px: the image, mirrored, and two shifted crops) per NIH sample image, in class folders
    `no_finding` / `finding` by the image's real labels."""
    import pandas as pd
    from PIL import Image, ImageOps

    sample = Path(__file__).resolve().parents[1] / "app" / "medcolor" / "samples" / "nih-cxr14-sample"
    entries = pd.read_csv(sample / "Data_Entry_2017.csv").head(n_sources)
    for _, e in entries.iterrows():
        cls = "no_finding" if e["Finding Labels"] == "No Finding" else "finding"
        (root / cls).mkdir(parents=True, exist_ok=True)
        im = Image.open(sample / "images" / e["Image Index"]).convert("L").resize((136, 136), Image.BILINEAR)
        variants = [im.crop((4, 4, 132, 132)), ImageOps.mirror(im.crop((4, 4, 132, 132))), im.crop((0, 0, 128, 128)),
                    im.crop((8, 8, 136, 136))]
        for k, v in enumerate(variants):
            v.save(root / cls / f"{Path(e['Image Index']).stem}_{k}.png")
    return root


def make_ixi(root: Path, n_subjects: int = 40, shape=(IXI_SIZE, IXI_SIZE, 40)) -> Path:
    """IXI-named int16 volumes: an ellipsoid head with smooth texture and noise, different for each subject."""
    import nibabel as nib
    import pandas as pd

    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    z, y, x = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape[::-1]), indexing="ij")
    rows = []
    for i in range(n_subjects):
        a, b = rng.uniform(0.6, 0.8, 2)
        head = (x / a) ** 2 + (y / b) ** 2 + (z / 1.2) ** 2 < 1
        texture = np.sin(6 * x + i) * np.cos(5 * y - i) + 0.5 * np.sin(9 * z)
        vol = head * (600 + 150 * texture) + rng.normal(0, 20, head.shape)
        nib.save(nib.Nifti1Image(vol.transpose(2, 1, 0).astype(np.int16), np.eye(4)),
                 str(root / f"IXI{100 + i:03d}-HH-{1000 + i}-T1.nii.gz"))
        rows.append({"IXI_ID": 100 + i, "SEX_ID (1=m, 2=f)": 1 + i % 2, "ETHNIC_ID": 1})
    pd.DataFrame(rows).to_csv(root / "IXI.csv", index=False)
    return root


# ---- 2. training step ------------------------------------------------------------------------------------------

def step_speed(backbone: str, colorizer: str, size: int, channels_last: bool, bs: int = 8, steps: int = 3) -> float:
    """Training images/s of one model (mode 2) on random batches; on a GPU with bf16 autocast, as train.bf16."""
    from medcolor.core.config import ModelConfig
    from medcolor.nets.models import build_model

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bs = bs * 4 if device.type == "cuda" else bs
    model = build_model(ModelConfig(backbone=backbone, colorizer=colorizer, mode=2), 5).train().to(device)
    x, y = torch.randn(bs, 1, size, size, device=device), torch.rand(bs, 5, device=device).round()
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out = model(x).float()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return bs * steps / (time.perf_counter() - start)


def sweep_on_paper(n_train: int = 223_414, size: int = 320, shards: int = 8) -> None:
    """Wall time of the thesis Table 5.1 sweep from measured training images/s per (backbone, colorizer) at 320 px,
    counting every run at its mode-2 speed (mode 1 is faster: the frozen body needs no weight gradients)."""
    from medcolor.training.recipes import load_recipe
    from medcolor.training.sweeps import expand, load_sweep, shard

    jobs = expand(load_sweep("table5-1"))
    speed, hours = {}, {}
    for job in jobs:
        r = load_recipe(job.recipe, list(job.overrides))
        key = (r.model.backbone, r.model.colorizer)
        if key not in speed:
            speed[key] = step_speed(*key, size, True, steps=2)
        hours[job] = r.train.epochs * n_train / speed[key] / 3600
    one = sum(hours.values())
    busiest = max(sum(hours[j] for j in shard(jobs, i, shards)) for i in range(1, shards + 1))
    where = "GPU" if torch.cuda.is_available() else "CPU like this one"
    images = sum(load_recipe(j.recipe, list(j.overrides)).train.epochs for j in jobs) * n_train
    row(f"Table 5.1 sweep ({len(jobs)} runs, {images / 1e6:.1f} M training images) on one {where}",
        f"{one:,.0f} h", ", ".join(f"{b} + {c} {v:.1f} img/s" for (b, c), v in speed.items()))
    row(f"Table 5.1 sweep on {shards} of them (`--shard i/{shards}`)", f"{busiest:,.0f} h",
        f"the busiest shard; {one / busiest:.1f}x faster than one")


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

def pipeline_speed(cfg, size: int, batches: int = 8) -> tuple[float, float]:
    """(seconds to build the DataLoaders, training images/s after the first batch) with 0 workers."""
    from medcolor.data.block import build_dls_from_config

    start = time.perf_counter()
    dls, _ = build_dls_from_config(cfg, size, bs=32, num_workers=0)
    built = time.perf_counter() - start
    it = iter(dls.train)
    next(it)
    start = time.perf_counter()
    n = 0
    for _ in range(batches):
        n += len(next(it)[0])
    return built, n / (time.perf_counter() - start)


def data_pipeline(model_speed: float) -> None:
    from medcolor.data import load_data_config
    from medcolor.data.summary import cache

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "big"
        make_big_pngs(root)
        folder = lambda *o: load_data_config("folder", list(o), root=str(root))  # noqa: E731
        ram = pipeline_speed(folder("in_memory=always"), 320)
        disk = pipeline_speed(folder("in_memory=never"), 320)
        os.environ["MEDCOLOR_CACHE_DIR"] = str(Path(tmp) / "cache")
        start = time.perf_counter()
        cache(folder(), 320)
        built = time.perf_counter() - start
        cached = pipeline_speed(folder("in_memory=never"), 320)
        del os.environ["MEDCOLOR_CACHE_DIR"]
    row("data @ 320 px from 1024 px PNGs, in RAM (the default)", f"{ram[1]:.0f} img/s",
        f"decoded once in {ram[0]:.1f} s (480 images); {ram[1] / model_speed:.0f}x what resnet18 + deconv trains")
    row("data @ 320 px from 1024 px PNGs, `in_memory=never`", f"{disk[1]:.0f} img/s", "decode + resize every epoch")
    row("data @ 320 px from `data cache`, `in_memory=never`", f"{cached[1]:.0f} img/s",
        f"cache built in {built:.1f} s")


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
        dls, _ = build_dls_from_config(load_data_config("chexpert", root=str(root)), 320, bs=16)
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
    ap.add_argument("--only", choices=["compare", "replay", "steps", "data", "chexpert", "cli", "scale"],
                    action="append")
    ap.add_argument("--seeds", type=int, default=1, help="medcolor / bare-loop pairs per comparison, one per seed")
    ap.add_argument("--jobs", nargs="+", choices=["demo", "scratch", "folder", "reconstruction",
                                                  *(f"gpu-{b}-{c}" for b, c in GPU_JOBS)],
                    help="comparisons to run (default: all; the gpu- ones only when a GPU is present)")
    args = ap.parse_args()
    parts = args.only or ["cli", "chexpert", "steps", "data", "compare", "replay", "scale"]
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
        compare(args.quick, args.seeds, args.jobs)
    if "replay" in parts:
        replay_check(args.quick)
    if "scale" in parts:
        sweep_on_paper()
    row("peak memory (this process)", f"{peak_mb():.0f} MB", "children measured separately")
    print("\n| measurement | value | note |\n|---|---:|---|")
    for what, value, note in ROWS:
        print(f"| {what} | {value} | {note} |")
