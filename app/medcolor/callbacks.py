"""fastai callbacks of medcolor's own, one job each: what fastai's SaveModelCallback / CSVLogger /
TerminateOnNaNCallback do not offer (atomic writes; one checkpoint that holds weights + optimiser + history for an
exact resume; evaluation every N iterations; saying where a NaN appeared), the AECNN auxiliary loss and FMix."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from fastai.callback.core import Callback, CancelFitException
from fastai.torch_core import num_distrib

from .io import atomic_torch_save, atomic_write


class PlainTensors(Callback):
    """Hands the model and the loss plain torch tensors. fastai's typed batches (TensorImage, TensorMultiCategory)
    run their __torch_function__ on every operation inside the model: 12 % of a demo training step on this CPU."""

    order = -5  # before any callback that reads or mixes the batch (MixUp, FMix, ChannelsLast)

    def before_batch(self):
        self.learn.xb = tuple(x.as_subclass(torch.Tensor) for x in self.learn.xb)
        self.learn.yb = tuple(y.as_subclass(torch.Tensor) for y in self.learn.yb)


def bare(model):
    """The model inside a DistributedDataParallel wrapper (checkpoints keep the plain keys)."""
    return getattr(model, "module", model)


class RunState(Callback):
    """After each epoch: best.pth when the monitored score improves, then last.pth (weights, optimiser, epoch,
    history), then history.csv, all atomically. On resume it starts from the rows and best score kept in last.pth.
    Columns a callback offers through `history_columns()` (AECNN's two losses) join each epoch's row."""

    order = 65  # after the Recorder (50) has logged the epoch

    def __init__(self, run_dir: Path, monitor="mean_auc", rows=None, best=-math.inf, best_epoch=-1, start_epoch=0,
                 eval_every_iters=0, evaluate=None, log=None):
        self.run_dir, self.monitor, self.rows = Path(run_dir), monitor, list(rows or [])
        self.best, self.best_epoch, self.start_epoch = best, best_epoch, start_epoch
        self.every, self.evaluate, self.log, self.evals = eval_every_iters, evaluate, log, []
        self.valid_preds = []  # (probabilities, targets) per batch of the current validation pass

    def before_validate(self):
        self.valid_preds = []

    def after_batch(self):
        if not self.training and hasattr(self.learn.loss_func, "activation"):  # the best model's validation
            self.valid_preds.append((self.learn.loss_func.activation(self.learn.pred).float().cpu(),  # predictions
                                     self.learn.yb[0].float().cpu()))  # spare finalize a pass (classification)
        if self.training and self.every and self.train_iter % self.every == 0 and self.evaluate:
            score = self.evaluate(self.learn)
            self.evals.append({"epoch": self.epoch, "iteration": self.train_iter, self.monitor: score})
            atomic_write(self.run_dir / "evals.csv", pd.DataFrame(self.evals).to_csv(index=False))
            self._keep_if_best(score, self.epoch)

    def after_epoch(self):
        if self.epoch < self.start_epoch:  # epochs skipped on resume
            return
        row = {k: v for k, v in zip(self.recorder.metric_names, self.recorder.log) if k != "time"}
        for cb in self.learn.cbs:
            row.update(getattr(cb, "history_columns", dict)())
        row["epoch"] = self.epoch
        self.rows.append({k: (float(v) if k != "epoch" else int(v)) for k, v in row.items()})
        self._keep_if_best(row.get(self.monitor, math.nan), self.epoch, self.valid_preds)
        atomic_torch_save({"model": bare(self.learn.model).state_dict(), "opt": plain_opt_state(self.learn.opt),
                           "epoch": self.epoch, "rows": self.rows, "best": self.best,
                           "best_epoch": self.best_epoch}, self.run_dir / "last.pth")
        atomic_write(self.run_dir / "history.csv", pd.DataFrame(self.rows).to_csv(index=False))
        if self.log:
            self.log(f"epoch {self.epoch}: " + ", ".join(f"{k} {v:.4f}" for k, v in self.rows[-1].items()
                                                         if k in ("train_loss", "valid_loss", self.monitor)))

    def _keep_if_best(self, score, epoch, valid_preds=None):
        """best.pth, and in `learn.best_valid_preds` the (probabilities, targets) of the whole validation split that
        scored it when they were seen here in one process (else None: finalize predicts again)."""
        if score is not None and not math.isnan(score) and score > self.best:
            self.best, self.best_epoch = float(score), epoch
            atomic_torch_save(bare(self.learn.model).state_dict(), self.run_dir / "best.pth")
            whole = valid_preds and num_distrib() == 0
            self.learn.best_valid_preds = tuple(torch.cat(p).numpy() for p in zip(*valid_preds)) if whole else None


class StopOnNaN(Callback):
    """Stop at the first non-finite training loss and remember the epoch in `nan_epoch` (fastai's
    TerminateOnNaNCallback stops too, but says nothing about where)."""

    order = -9

    def __init__(self):
        self.nan_epoch = None

    def after_batch(self):
        if self.training and not torch.isfinite(self.learn.loss).all():
            self.nan_epoch = self.epoch
            raise CancelFitException


def _plain(obj):
    """fastcore's L -> list, recursively, so the checkpoint loads with torch.load(weights_only=True)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)) or type(obj).__name__ == "L":
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):  # fastai's schedulers leave numpy scalars in the hyper-parameters
        return obj.item()
    return obj


def plain_opt_state(opt) -> dict:
    return _plain(opt.state_dict())


def load_opt_state(opt, state: dict) -> None:
    from fastcore.foundation import L

    opt.load_state_dict({"state": state["state"], "hypers": L(state["hypers"])})


class AuxReconstruction(Callback):
    """AECNN: loss = (1 - w) * classification loss + w * MSE(reconstruction, input); both parts are offered per
    epoch (train_bce, train_mse, valid_bce, valid_mse) as history columns."""

    order = 60  # before RunState writes the epoch's row

    def __init__(self, weight: float = 0.1):
        self.weight, self.epoch_means = weight, {}

    def before_epoch(self):
        self.sums = {k: 0.0 for k in ("train_bce", "train_mse", "valid_bce", "valid_mse")}
        self.counts = {"train": 0, "valid": 0}

    def after_loss(self):
        recon = self.learn.model.colorizer.reconstruction
        mse = torch.nn.functional.mse_loss(recon.float(), self.learn.xb[0].float())
        phase, n = ("train" if self.training else "valid"), self.learn.xb[0].shape[0]
        self.sums[f"{phase}_bce"] += float(self.learn.loss_grad) * n
        self.sums[f"{phase}_mse"] += float(mse) * n
        self.counts[phase] += n
        self.learn.loss_grad = (1 - self.weight) * self.learn.loss_grad + self.weight * mse
        self.learn.loss = self.learn.loss_grad.clone()

    def after_epoch(self):
        self.epoch_means = {k: v / max(1, self.counts[k.split("_")[0]]) for k, v in self.sums.items()}

    def history_columns(self) -> dict:
        return self.epoch_means


def fmix_mask(lam: float, shape: tuple[int, int], decay_power: float = 3.0) -> torch.Tensor:
    """FMix (Harris et al. 2020): threshold low-frequency noise from Fourier space so that a `lam` share is 1."""
    h, w = shape
    freqs = torch.sqrt(torch.fft.fftfreq(h)[:, None] ** 2 + torch.fft.rfftfreq(w)[None] ** 2)
    scale = 1.0 / torch.maximum(freqs, torch.tensor(1.0 / max(h, w))) ** decay_power
    spectrum = torch.complex(torch.randn(h, w // 2 + 1), torch.randn(h, w // 2 + 1)) * scale
    grey = torch.fft.irfft2(spectrum, s=(h, w))
    k = int(round(lam * h * w))
    mask = torch.zeros(h * w)
    mask[grey.flatten().argsort(descending=True)[:k]] = 1.0
    return mask.view(h, w)


class FMix(Callback):
    """Mixed-sample augmentation with FMix masks: x = m * x + (1 - m) * x[perm], and the targets mixed by the
    mask's area. Targets are float rows here (multi-hot or one-hot), so mixing them needs no change to the loss."""

    run_valid, order = False, 55

    def __init__(self, alpha: float = 1.0, decay_power: float = 3.0):
        self.alpha, self.decay_power = alpha, decay_power

    def before_batch(self):
        x, y = self.learn.xb[0], self.learn.yb[0]
        lam = float(torch.distributions.Beta(self.alpha, self.alpha).sample())
        mask = fmix_mask(lam, tuple(x.shape[-2:]), self.decay_power).to(x.device, x.dtype)
        perm = torch.randperm(x.shape[0], device=x.device)
        area = float(mask.mean())
        self.learn.xb = (mask * x + (1 - mask) * x[perm],)
        self.learn.yb = (area * y + (1 - area) * y[perm],)
        self.mask, self.perm, self.area = mask, perm, area


def mix_callback(name: str) -> list:
    """train.mix: none, mixup / cutmix (fastai's own callbacks) or fmix."""
    if name == "fmix":
        return [FMix()]
    if name in ("mixup", "cutmix"):
        from fastai.callback.mixup import CutMix, MixUp
        return [MixUp() if name == "mixup" else CutMix()]
    return []
