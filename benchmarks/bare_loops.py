"""The references `bench.py` measures medcolor against: each job written as a plain PyTorch script.

They take the job from the same recipe (model, weights, transfer mode, optimiser, one-cycle or plateau schedule,
batch size, epochs, augmentation, MixUp) and the same table and split, but decode every image once into a tensor,
loop by hand, keep the best epoch's weights in memory and write nothing. Run as a script:

    python benchmarks/bare_loops.py classify RECIPE [KEY=VALUE ...]
    python benchmarks/bare_loops.py reconstruct RECIPE [KEY=VALUE ...]
    python benchmarks/bare_loops.py replay RECIPE [KEY=VALUE ...]   (medcolor's training loop replayed by hand)

and it prints one JSON line: seconds (the whole process), training images and the test score.
"""
from __future__ import annotations

import time

START = time.perf_counter()

import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(t):
    """The recipe's mixed precision on a GPU (train.fp16 / train.bf16), as fastai's MixedPrecision does it."""
    half = DEVICE.type == "cuda" and (t.fp16 or t.bf16)
    return torch.autocast(DEVICE.type, dtype=torch.bfloat16 if t.bf16 else torch.float16, enabled=half)


def one_cycle(opt, t, steps: int):
    """fastai's fit_one_cycle as torch's OneCycleLR: cosine up for pct_start, down to max_lr / div_final."""
    return torch.optim.lr_scheduler.OneCycleLR(opt, t.max_lr, total_steps=steps, pct_start=t.pct_start,
                                               div_factor=t.div, final_div_factor=t.div_final / t.div)


def optimizer(params, t):
    if t.opt == "sgd":
        return torch.optim.SGD(params, lr=t.max_lr, momentum=0.9, weight_decay=t.wd)
    if t.opt == "rmsprop":
        return torch.optim.RMSprop(params, lr=t.max_lr, alpha=0.9, eps=1e-7)
    return torch.optim.AdamW(params, lr=t.max_lr, weight_decay=t.wd)


# ---- classification ------------------------------------------------------------------------------------------

def gray_square(path: str, size: int) -> np.ndarray:
    from PIL import Image

    im = Image.open(path).convert("L")
    s = min(im.size)
    box = ((im.width - s) // 2, (im.height - s) // 2, (im.width + s) // 2, (im.height + s) // 2)
    return np.asarray(im.crop(box).resize((size, size), Image.BILINEAR))


def image_tensor(paths, size: int) -> torch.Tensor:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        return torch.from_numpy(np.stack(list(pool.map(lambda p: gray_square(p, size), paths))))[:, None]


def augment(x: torch.Tensor, cfg) -> torch.Tensor:
    """fastai's Rotate and Zoom as one affine warp per image (reflection padding): an angle and a zoom, each drawn
    with probability p_affine, the zoom about a random centre."""
    n = len(x)
    angle = (torch.rand(n) * 2 - 1) * math.radians(cfg.rotate_deg) * (torch.rand(n) < cfg.p_affine)
    scale = 1 / (1 + torch.rand(n) * (cfg.max_zoom - 1) * (torch.rand(n) < cfg.p_affine))
    shift = (1 - scale[:, None]) * (2 * torch.rand(n, 2) - 1)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, padding_mode="reflection", align_corners=True)


def mixup(x: torch.Tensor, y: torch.Tensor):
    """fastai's MixUp: each image blended with a shuffled partner by its own lambda ~ Beta(0.4, 0.4), kept >= 0.5."""
    lam = torch.distributions.Beta(0.4, 0.4).sample((len(x),)).to(x.device)
    lam, perm = torch.maximum(lam, 1 - lam), torch.randperm(len(x), device=x.device)
    return torch.lerp(x[perm], x, lam.view(-1, 1, 1, 1)), torch.lerp(y[perm], y, lam.view(-1, 1))


def freeze_body(model, mode: int) -> list:
    """Mode 1: the backbone's body (not its classifier) stops learning; returns its modules."""
    if mode != 1:
        return []
    frozen, head = list(model.backbone.modules()), set(model.head.parameters())
    for m in frozen:
        for p in m.parameters(recurse=False):
            p.requires_grad = p in head
    return frozen


def train_mode(model, frozen: list) -> None:
    """Training mode, but a frozen body's BatchNorm keeps its (ImageNet) running statistics."""
    model.train()
    for m in frozen:
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


def mean_auc(model, x, y, single: bool, bs: int, memory) -> float:
    from sklearn.metrics import roc_auc_score

    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(x[i:i + bs].to(DEVICE).contiguous(memory_format=memory)).float().cpu()
                            for i in range(0, len(x), bs)])
    p = (logits.softmax(1) if single else logits.sigmoid()).numpy()
    t = y.numpy()
    return float(np.mean([roc_auc_score(t[:, i], p[:, i]) for i in range(t.shape[1]) if len(set(t[:, i])) == 2]))


def classify(recipe_name: str, overrides: list[str]) -> dict:
    from medcolor.data.readers import read_table
    from medcolor.nets.models import build_model
    from medcolor.training.recipes import load_recipe

    r = load_recipe(recipe_name, overrides)
    t, d = r.train, r.data
    torch.manual_seed(t.seed)
    table = read_table(d)
    single = table.single_label

    def split(name):
        rows = table.split(name)
        x = image_tensor(rows["path"], t.image_size)
        return x, torch.tensor(rows[table.labels].to_numpy(np.float32))

    (x_train, y_train), (x_valid, y_valid) = split("train"), split("valid")
    x_test, y_test = split(table.eval_split())
    normalise = lambda x: (x.float() / 255 - d.mean) / d.std  # noqa: E731
    x_valid, x_test = normalise(x_valid), normalise(x_test)

    model = build_model(r.model, len(table.labels), stats=(d.mean, d.std))
    memory = torch.channels_last if t.channels_last else torch.contiguous_format  # the recipe's layout, as medcolor
    model = model.to(DEVICE, memory_format=memory)
    frozen = freeze_body(model, r.model.mode)
    opt = optimizer([p for p in model.parameters() if p.requires_grad], t)
    steps = len(x_train) // t.bs
    sched = one_cycle(opt, t, t.epochs * steps)
    scaler = torch.amp.GradScaler(enabled=DEVICE.type == "cuda" and t.fp16)
    best, best_state = -1.0, None
    for _ in range(t.epochs):
        train_mode(model, frozen)
        order = torch.randperm(len(x_train))
        for k in range(steps):
            idx = order[k * t.bs:(k + 1) * t.bs]
            xb, yb = normalise(x_train[idx].to(DEVICE, non_blocking=True)), y_train[idx].to(DEVICE)
            xb = augment(xb, d) if d.augment else xb
            if t.mix == "mixup":
                xb, yb = mixup(xb, yb)
            with autocast(t):
                out = model(xb.contiguous(memory_format=memory)).float()
            loss = F.cross_entropy(out, yb) if single else F.binary_cross_entropy_with_logits(out, yb)
            opt.zero_grad()
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
        score = mean_auc(model, x_valid, y_valid, single, t.bs, memory)
        if score > best:
            best, best_state = score, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return {"mean_auc": mean_auc(model, x_test, y_test, single, t.bs, memory), "train_images": t.epochs * steps * t.bs}


def plain_optimizer(params, t, first_lr: float):
    """The recipe's optimiser in plain torch, as medcolor's fastai optimiser computes it (decoupled weight decay
    is applied by hand in the loop)."""
    if t.opt == "sgd":
        return torch.optim.SGD(params, lr=first_lr, momentum=t.mom)
    if t.opt == "rmsprop":
        return torch.optim.RMSprop(params, lr=first_lr, alpha=0.9, eps=1e-7)
    raise SystemExit("replay covers the SGD and RMSprop recipes")


def valid_score(model, learn, reconstruction: bool, bs: int) -> float:
    """The validation monitor: mean AUC (classification) or mean per-image SSIM (reconstruction)."""
    from medcolor.tasks.reconstruction import per_image_ssim

    x, y = (torch.cat(v) for v in zip(*[(a.as_subclass(torch.Tensor), b.as_subclass(torch.Tensor))
                                        for a, b in learn.dls.valid]))
    if not reconstruction:
        return mean_auc(model, x, y, learn.dls.valid_ds.single_label, bs, torch.contiguous_format)
    model.eval()
    with torch.no_grad():
        return float(torch.cat([per_image_ssim(model(x[i:i + bs]), y[i:i + bs]) for i in range(0, len(x), bs)]).mean())


def replay(recipe_name: str, overrides: list[str]) -> dict:
    """medcolor trains the recipe (its own `train.fit`: fit_one_cycle, or fit with ReduceLROnPlateau) while a
    callback records every training batch (after augmentation, denoising and MixUp) and the learning rate and
    momentum fastai used; then a plain loop (torch SGD or RMSprop, fastai's decoupled weight decay by hand, none
    on norm or bias parameters) trains the same initial weights on the same batches with the same
    hyper-parameters. Equal implementations end with equal weights (float rounding apart); the seed-to-seed
    spread of `compare` is then randomness, not the framework."""
    import copy

    from fastai.callback.core import Callback

    from medcolor.training.learner import build_learner
    from medcolor.training.recipes import load_recipe
    from medcolor.training.train import fit

    r = load_recipe(recipe_name, overrides)
    t, reconstruction = r.train, r.task == "reconstruction"
    if r.model.mode not in (1, 2):
        raise SystemExit("replay covers transfer modes 1 and 2")
    learn = build_learner(r)
    start = copy.deepcopy(learn.model.state_dict())

    class Record(Callback):
        order = 100  # after every callback that changes the batch (augmentation, MixUp)

        def __init__(self):
            self.steps, self.valid = [], []

        def before_batch(self):
            if self.training:
                h = self.opt.hypers[-1]
                self.steps.append((self.xb[0].clone(), self.yb[0].clone(), h["lr"], h.get("mom", 0.0)))

        def after_epoch(self):
            self.valid.append(valid_score(self.model, self.learn, reconstruction, t.bs))

    learn.add_cb(record := Record())
    with learn.no_bar(), learn.no_logging():
        fit(learn, r, None, quiet=True)
    fastai_state = copy.deepcopy(learn.model.state_dict())
    model = learn.model
    model.load_state_dict(start)
    frozen = freeze_body(model, r.model.mode)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = plain_optimizer(params, t, record.steps[0][2])
    loss_fn, plain_valid = learn.loss_func, []
    per_epoch = len(record.steps) // t.epochs
    for epoch in range(t.epochs):
        train_mode(model, frozen)
        for xb, yb, lr, mom in record.steps[epoch * per_epoch:(epoch + 1) * per_epoch]:
            for g in opt.param_groups:
                g["lr"] = lr
                if "momentum" in g:
                    g["momentum"] = mom
            loss = loss_fn(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            with torch.no_grad():
                for p in params:
                    if p.ndim > 1:  # fastai's decoupled weight decay; norm and bias parameters have none
                        p.mul_(1 - lr * t.wd)
            opt.step()
        plain_valid.append(valid_score(model, learn, reconstruction, t.bs))
    diff = max((fastai_state[k].float() - v.float()).abs().max().item() for k, v in model.state_dict().items())
    lrs = sorted({s[2] for s in record.steps}, reverse=True)
    return {"monitor": "ssim" if reconstruction else "mean_auc", "fastai_valid": record.valid,
            "plain_valid": plain_valid, "max_weight_difference": diff, "steps": len(record.steps),
            "learning_rates": lrs if t.schedule == "plateau" else [lrs[0], lrs[-1]]}


# ---- reconstruction ------------------------------------------------------------------------------------------

def slices(rows, size: int) -> torch.Tensor:
    """Each volume read once, scaled to [0, 1] by its own range, the table's slices resized to size."""
    import nibabel as nib

    out = []
    for path, group in rows.groupby("path", sort=False):
        v = np.asarray(nib.load(path).dataobj, dtype=np.float32)
        v = (v - v.min()) / max(float(v.max() - v.min()), 1e-12)
        out += [torch.from_numpy(np.ascontiguousarray(v[..., int(s)]))[None] for s in group["slice"]]
    x = torch.stack(out)
    return x if x.shape[-1] == size else F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def reconstruct(recipe_name: str, overrides: list[str]) -> dict:
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    from medcolor.data.readers import read_table
    from medcolor.data.volumes import denoise_input
    from medcolor.nets.models import build_model
    from medcolor.training.recipes import load_recipe

    r = load_recipe(recipe_name, overrides)
    t = r.train
    torch.manual_seed(t.seed)
    table = read_table(r.data)
    x_train, x_valid = slices(table.split("train"), t.image_size), slices(table.split("valid"), t.image_size)
    x_test = slices(table.split(table.eval_split()), t.image_size)
    memory = torch.channels_last if t.channels_last else torch.contiguous_format  # the recipe's layout, as medcolor
    model = build_model(r.model, 1).to(memory_format=memory)
    opt = optimizer(model.parameters(), t)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=t.plateau_factor, patience=t.plateau_patience,
                                                         min_lr=t.min_lr)
    steps = len(x_train) // t.bs

    def predict(x):
        model.eval()
        with torch.no_grad():
            return torch.cat([model(x[i:i + t.bs].contiguous(memory_format=memory)) for i in range(0, len(x), t.bs)])
    best, best_state = -math.inf, None
    for _ in range(t.epochs):
        model.train()
        order = torch.randperm(len(x_train))
        for k in range(steps):
            yb = x_train[order[k * t.bs:(k + 1) * t.bs]]
            xb = torch.stack([denoise_input(y) for y in yb]) if r.data.denoise else yb
            loss = F.mse_loss(model(xb.contiguous(memory_format=memory)), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        out = predict(x_valid)
        plateau.step(float(F.mse_loss(out, x_valid)))
        score = float(structural_similarity_index_measure(out.clamp(0, 1), x_valid, data_range=1.0))
        if score > best:  # the best epoch by validation SSIM, medcolor's monitor for reconstruction
            best, best_state = score, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    psnr = peak_signal_noise_ratio(predict(x_test).clamp(0, 1), x_test, data_range=1.0, reduction="none",
                                   dim=(1, 2, 3))
    return {"psnr": float(psnr.mean()), "train_images": t.epochs * steps * t.bs}


if __name__ == "__main__":
    job, recipe, *rest = sys.argv[1:]
    result = {"classify": classify, "reconstruct": reconstruct, "replay": replay}[job](recipe, rest)
    print(json.dumps({"seconds": round(time.perf_counter() - START, 2), **result}))
