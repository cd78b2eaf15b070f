"""Losses that carry their activation, so fastai's get_preds returns probabilities."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


WEIGHT_RANGE = (0.01, 100.0)  # train.pos_weight: auto is clipped here, so a label with 1 positive cannot dominate


def class_weights(targets: np.ndarray, single_label: bool) -> np.ndarray:
    """train.pos_weight: auto, from the training split's targets: per label negatives / positives (BCE's
    pos_weight; unknown targets not counted), or per class n / (classes x n_class) for single-label data
    (scikit-learn's "balanced" class weights); clipped to WEIGHT_RANGE."""
    if single_label:
        counts = np.nansum(targets, 0)
        weights = targets.shape[0] / (targets.shape[1] * np.maximum(counts, 1))
    else:
        pos, neg = np.nansum(targets == 1, 0), np.nansum(targets == 0, 0)
        weights = neg / np.maximum(pos, 1)
    return np.clip(weights, *WEIGHT_RANGE)


class MaskedBCEWithLogits(nn.Module):
    """BCE over known targets only: the u-ignore policy leaves uncertain labels as NaN.
    reduction='none' (fastai's MixUp/CutMix set it) gives one value per image. `pos_weight`: PyTorch's, per label."""

    reduction = "mean"

    def __init__(self, pos_weight=None):
        super().__init__()
        self.pos_weight = None if pos_weight is None else torch.as_tensor(pos_weight, dtype=torch.float32)

    def forward(self, logits, targets):
        known = ~torch.isnan(targets)
        weight = None if self.pos_weight is None else self.pos_weight.to(logits.device)
        if self.reduction == "none" or not known.all():
            bce = F.binary_cross_entropy_with_logits(logits, targets.nan_to_num(0).float(), reduction="none",
                                                     pos_weight=weight)
            if self.reduction == "none":
                return (bce * known).sum(1) / known.sum(1).clamp(min=1)
            return bce[known].mean() if known.any() else (bce * 0).sum()  # a batch with nothing known teaches nothing
        return F.binary_cross_entropy_with_logits(logits, targets.float(), pos_weight=weight)

    def activation(self, x):
        return torch.sigmoid(x)

    def decodes(self, x):
        return x > 0.5


class SoftTargetCrossEntropy(nn.Module):
    """Cross-entropy for single-label data whose targets are one-hot rows. With class weights `weight`, the mean is
    weighted as PyTorch's class-index cross-entropy weighs it (sum w_y l / sum w_y), also for soft targets (mixup):
    PyTorch's own soft-target form divides by the batch size instead."""

    reduction = "mean"

    def __init__(self, weight=None):
        super().__init__()
        self.weight = None if weight is None else torch.as_tensor(weight, dtype=torch.float32)

    def forward(self, logits, targets):
        if self.weight is None:
            return F.cross_entropy(logits, targets.float(), reduction=self.reduction)
        weighted = targets.float() * self.weight.to(logits.device)
        per_image = -(weighted * F.log_softmax(logits, -1)).sum(-1)
        return per_image if self.reduction == "none" else per_image.sum() / weighted.sum()

    def activation(self, x):
        return F.softmax(x, dim=-1)

    def decodes(self, x):
        return x.argmax(dim=-1)


def loss_for(single_label: bool, weights=None) -> nn.Module:
    return SoftTargetCrossEntropy(weights) if single_label else MaskedBCEWithLogits(weights)
