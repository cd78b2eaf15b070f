"""Losses that carry their activation, so fastai's get_preds returns probabilities."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MaskedBCEWithLogits(nn.Module):
    """BCE over known targets only: the u-ignore policy leaves uncertain labels as NaN.
    reduction='none' (fastai's MixUp/CutMix set it) gives one value per image."""

    reduction = "mean"

    def forward(self, logits, targets):
        known = ~torch.isnan(targets)
        if self.reduction == "none":
            bce = F.binary_cross_entropy_with_logits(logits, targets.nan_to_num(0).float(), reduction="none")
            return (bce * known).sum(1) / known.sum(1).clamp(min=1)
        if known.all():
            return F.binary_cross_entropy_with_logits(logits, targets.float())
        return F.binary_cross_entropy_with_logits(logits[known], targets[known].float())

    def activation(self, x):
        return torch.sigmoid(x)

    def decodes(self, x):
        return x > 0.5


class SoftTargetCrossEntropy(nn.Module):
    """Cross-entropy for single-label data whose targets are one-hot rows."""

    reduction = "mean"

    def forward(self, logits, targets):
        return F.cross_entropy(logits, targets.float(), reduction=self.reduction)

    def activation(self, x):
        return F.softmax(x, dim=-1)

    def decodes(self, x):
        return x.argmax(dim=-1)


def loss_for(single_label: bool) -> nn.Module:
    return SoftTargetCrossEntropy() if single_label else MaskedBCEWithLogits()
