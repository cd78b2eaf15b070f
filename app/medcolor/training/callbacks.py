"""fastai callbacks of medcolor's own, one job each: what fastai's SaveModelCallback / CSVLogger /
TerminateOnNaNCallback do not offer - the run folder's bookkeeping (RunHistory, SaveBest, SaveLast: atomic writes,
one checkpoint that holds weights + optimiser + history for an exact resume), evaluation every N iterations
(MidEpochEval), the best epoch's validation predictions (BestValidPredictions), saying where a NaN appeared
(StopOnNaN), stopping early and saying why (EarlyStopping, PruneTrial) - plus plain tensors for the model, the AECNN
auxiliary loss and FMix."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from fastai.callback.core import Callback, CancelFitException, CancelTrainException
from fastai.callback.tracker import TrackerCallback
from fastai.torch_core import num_distrib

from ..core import runfolder
from ..core.registry import Registry


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


class RunHistory(Callback):
    """One row per epoch (the Recorder's values plus the columns other callbacks offer through `history_columns()`,
    e.g. AECNN's two losses) into history.csv; on resume it continues the rows kept in last.pth. It writes after
    SaveLast, which takes the rows from `rows_so_far()`: an epoch in history.csv is always in last.pth too."""

    order = 63  # after the Recorder (50), the callbacks that offer columns (60) and SaveLast (62)

    def __init__(self, run_dir: Path, rows=None, start_epoch: int = 0, log=None, shown=("train_loss", "valid_loss")):
        self.run_dir, self.rows, self.start_epoch, self.log, self.shown = Path(run_dir), list(rows or []), \
            start_epoch, log, shown

    def rows_so_far(self) -> list[dict]:
        """Every row up to this epoch's, which is built from the Recorder once its epoch has ended."""
        if not self.rows or self.rows[-1]["epoch"] != self.epoch:
            row = {k: v for k, v in zip(self.recorder.metric_names, self.recorder.log) if k != "time"}
            for cb in self.learn.cbs:
                row.update(getattr(cb, "history_columns", dict)())
            self.rows.append({**{k: float(v) for k, v in row.items() if k != "epoch"}, "epoch": int(self.epoch)})
        return self.rows

    def after_epoch(self):
        if self.epoch < self.start_epoch:  # epochs skipped on resume
            return
        runfolder.write_history(self.run_dir, self.rows_so_far())
        if self.log:
            self.log(f"epoch {self.epoch}: " + ", ".join(f"{k} {v:.4f}" for k, v in self.rows[-1].items()
                                                         if k in self.shown))


class SaveBest(TrackerCallback):
    """best.pth whenever the monitored validation value improves (lower for a loss, higher for a score), at the end
    of an epoch or, through `consider`, in the middle of one (train.eval_every_iters). `best_at` says which:
    ("epoch", n) or ("iteration", n)."""

    order = 61

    def __init__(self, run_dir: Path, monitor: str, best: float | None = None, best_epoch: int = -1,
                 start_epoch: int = 0):
        super().__init__(monitor=monitor, reset_on_fit=False)  # fastai: np.less for a loss, np.greater otherwise
        self.run_dir, self.best, self.best_epoch, self.start_epoch = Path(run_dir), best, best_epoch, start_epoch
        self.best_at = ("epoch", best_epoch)

    def after_epoch(self):
        if self.epoch < self.start_epoch:
            return
        super().after_epoch()
        if self.new_best:
            self._save(("epoch", self.epoch))

    def consider(self, score: float) -> bool:
        if score is None or math.isnan(score) or not self.comp(score, self.best):
            return False
        self.best = float(score)
        self._save(("iteration", self.train_iter))
        return True

    def _save(self, at: tuple) -> None:
        self.best, self.best_epoch, self.best_at = float(self.best), self.epoch, at
        runfolder.save_best(self.run_dir, bare(self.learn.model).state_dict())


class SaveLast(Callback):
    """last.pth after every epoch: weights, optimiser state, epoch, history rows and best score - what --resume
    needs to continue exactly where the run stopped."""

    order = 62  # after SaveBest, before RunHistory writes history.csv

    def __init__(self, run_dir: Path, start_epoch: int = 0):
        self.run_dir, self.start_epoch = Path(run_dir), start_epoch

    def after_epoch(self):
        if self.epoch < self.start_epoch:
            return
        best = self.learn.save_best
        runfolder.save_last(self.run_dir, {"model": bare(self.learn.model).state_dict(),
                                           "opt": plain_opt_state(self.learn.opt), "epoch": self.epoch,
                                           "rows": self.learn.run_history.rows_so_far(), "best": best.best,
                                           "best_epoch": best.best_epoch})


class MidEpochEval(Callback):
    """Every `every` training iterations: the validation scores (`evaluate(learn)` -> {name: value}), kept in
    evals.csv, the monitored one offered to SaveBest - the thesis evaluated every 4,800 iterations."""

    order = 64

    def __init__(self, run_dir: Path, every: int, evaluate, monitor: str):
        self.run_dir, self.every, self.evaluate, self.monitor, self.evals = Path(run_dir), every, evaluate, monitor, []

    def after_batch(self):
        if self.training and self.train_iter % self.every == 0:
            scores = self.evaluate(self.learn)
            self.evals.append({"epoch": self.epoch, "iteration": self.train_iter, **scores})
            runfolder.write_evals(self.run_dir, self.evals)
            self.learn.save_best.consider(scores[self.monitor])


class BestValidPredictions(Callback):
    """The (probabilities, targets) of the validation pass that made best.pth, so the end of a run need not predict
    the validation split again. `kept` stays None when the best model came from a mid-epoch evaluation or when
    several processes each saw a share of the split."""

    order = 65  # after SaveBest has decided

    def __init__(self):
        self.kept, self._batches = None, []

    def before_validate(self):
        self._batches = []

    def after_batch(self):
        if not self.training and hasattr(self.learn.loss_func, "activation"):
            self._batches.append((self.learn.loss_func.activation(self.learn.pred).detach().float().cpu(),
                                  self.learn.yb[0].detach().float().cpu()))

    def after_epoch(self):
        best = self.learn.save_best
        if best.best_at == ("epoch", self.epoch):  # saved at this epoch's end (a skipped epoch saw no batches)
            whole = self._batches and num_distrib() == 0
            self.kept = tuple(torch.cat(p).numpy() for p in zip(*self._batches)) if whole else None
        elif best.best_at[0] == "iteration":
            self.kept = None


class StopOnNaN(Callback):
    """Stop at the first non-finite training loss; `nan_epoch` says where and `diverged` whether the batch was
    finite (so the weights diverged: too high a learning rate) rather than holding non-finite images or targets
    (fastai's TerminateOnNaNCallback stops too, but says neither)."""

    order = -9

    def __init__(self):
        self.nan_epoch, self.diverged, self.cause = None, False, ""

    def after_batch(self):
        if self.training and not torch.isfinite(self.learn.loss).all():
            images_ok = all(torch.isfinite(x).all() for x in self.learn.xb)
            targets_ok = all(not torch.isinf(y).any() for y in self.learn.yb)  # NaN: an unknown target, masked
            self.nan_epoch, self.diverged = self.epoch, images_ok and targets_ok
            self.cause = ("the weights diverged" if self.diverged else
                          "a batch held non-finite images" if not images_ok else "a batch held infinite targets")
            raise CancelFitException


class StopTraining(Callback):
    """Ends training after an epoch whose checkpoints, history and predictions are written, when `reason()` gives
    one; `stopped` says at which epoch and why (metrics.json, the model card, the console)."""

    order = 66  # after SaveBest, SaveLast, RunHistory and BestValidPredictions have done this epoch

    def __init__(self, start_epoch: int = 0):
        self.start_epoch, self.stopped = start_epoch, None

    def reason(self) -> str | None:
        raise NotImplementedError

    def after_epoch(self):
        if self.epoch < self.start_epoch or self.epoch + 1 >= self.n_epoch:  # skipped on resume, or the last one
            return
        why = self.reason()
        if why:
            self.stopped = {"epoch": int(self.epoch), "why": why}
            raise CancelFitException


class EarlyStopping(StopTraining):
    """train.early_stop_patience: stop once the monitored value has not improved for `patience` epochs, counted
    from SaveBest's best - so mid-epoch evaluations and a resumed run's history count too, which fastai's
    EarlyStoppingCallback (its own best of epoch-end values, reset by each fit) cannot see."""

    def __init__(self, patience: int, start_epoch: int = 0):
        super().__init__(start_epoch)
        self.patience = patience

    def reason(self) -> str | None:
        best = self.learn.save_best
        return no_improvement(self.patience, self.epoch, best.best_epoch, best.monitor, best.best)


def no_improvement(patience: int, epoch: int, best_epoch: int, monitor: str, best: float) -> str | None:
    """Why a run stops after `epoch` (early stopping), or None: the rule the callback applies and resume re-checks."""
    if patience and best_epoch >= 0 and epoch - best_epoch >= patience:
        return f"{monitor} did not improve for {epoch - best_epoch} epochs after epoch {best_epoch} ({best:.4f})"
    return None


class PruneTrial(StopTraining):
    """A tuning trial: each epoch's best monitored value so far goes to the trial (Optuna's `report`), and the run
    stops when the study's pruner says the trial is worse than the others at this epoch (`should_prune`)."""

    def __init__(self, trial, start_epoch: int = 0):
        super().__init__(start_epoch)
        self.trial = trial

    def after_epoch(self):
        best = self.learn.save_best.best
        if self.epoch >= self.start_epoch and best is not None and math.isfinite(best):
            self.trial.report(best, step=int(self.epoch))
        super().after_epoch()

    def reason(self) -> str | None:
        return "pruned by the tuning study: worse than its earlier trials at this epoch" if self.trial.should_prune() \
            else None


class FitKnn(Callback):
    """model.head knn: the support set is the training split's pooled features under the validation preprocessing
    (MedMNIST+ embeds its training set without augmentation) and its targets; nothing trains, so each epoch skips
    to validation, which scores the votes as any run's epoch is scored."""

    order = -20  # before the other callbacks look at the model

    def before_fit(self):
        from ..tasks.classification import frozen_features
        from ..nets.models import knn_head

        items = self.dls.train.dataset
        features = torch.from_numpy(frozen_features(self.learn, items.rows))
        knn_head(bare(self.model)).fit(features, torch.from_numpy(items.targets), items.single_label)

    def before_train(self):
        raise CancelTrainException

    def after_train(self):  # before the Recorder's: log the (empty) train loss, so each row keeps its columns
        self.recorder.cancel_train = False


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


def bn_callbacks(freeze_bn_stats: bool | None) -> list:
    """model.freeze_bn_stats: null keeps the BatchNorm statistics of frozen parts (fastai's BnFreeze), true those of
    the body even while it trains (mode 2), false none."""
    from fastai.callback.training import BnFreeze

    if freeze_bn_stats is False:
        return []
    return [BnFreeze()] + ([BodyBnStatsFrozen()] if freeze_bn_stats else [])


class BodyBnStatsFrozen(Callback):
    """The body's BatchNorm layers in eval mode while their weights train: fine-tuning on a few hundred images then
    keeps the statistics the body was trained with (ImageNet's, or mode 1's) instead of re-estimating them from
    small, augmented batches. fastai's BnFreeze does this only for layers whose parameters are frozen."""

    order = 1  # after fastai's TrainEvalCallback (order -10), which puts the model in train mode

    def before_train(self):
        from ..nets.models import part_of

        model = bare(self.model)
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and part_of(model, f"{name}.weight") \
                    == "body":
                module.eval()


class UnfreezeBody(Callback):
    """fastai's fine_tune inside one schedule: the body, frozen since the Learner was built (train.freeze_epochs),
    joins the training at epoch `at`; fastai's unfreeze clears the optimiser's state, as fine_tune's does."""

    def __init__(self, at: int):
        self.at = at

    def before_epoch(self):
        if self.epoch == self.at and self.opt.frozen_idx > 0:
            self.learn.unfreeze()


def load_opt_state(opt, state: dict) -> None:
    from fastcore.foundation import L

    opt.load_state_dict({"state": state["state"], "hypers": L(state["hypers"])})


class AuxReconstruction(Callback):
    """AECNN: loss = (1 - w) * classification loss + w * MSE(reconstruction, input); both parts are offered per
    epoch (train_bce, train_mse, valid_bce, valid_mse) as history columns."""

    order = 60  # before the epoch's history row is built

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


def _fastai_mix(name: str):
    def make():
        import fastai.callback.mixup as mixup
        return getattr(mixup, name)()
    return make


MIXES = Registry("train.mix")  # train.mix -> a callback factory: fastai's MixUp and CutMix, or FMix
MIXES.register("none", lambda: None)
MIXES.register("mixup", _fastai_mix("MixUp"))
MIXES.register("cutmix", _fastai_mix("CutMix"))
MIXES.register("fmix", FMix)


def mix_callback(name: str) -> list:
    callback = MIXES.get(name)()
    return [callback] if callback is not None else []
