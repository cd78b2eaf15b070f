"""The networks medcolor trains, one builder per architecture of core.archs (`BUILDERS`): ColorNet (colorizer ->
timm backbone body -> pooling -> Linear head), AECNN (learned compression front end -> backbone) and the
autoencoders. Plus the parts (colorizer / body / head) that transfer modes freeze and runs transfer."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .autoencoders import BIG, SMALL, AECNNFrontEnd, FrontEndAutoencoder, ResNetAutoencoder, TimmAutoencoder
from .backbones import create_backbone, read_state_dict, state_dict_mismatch
from ..core.archs import AE_BIG, AE_RESNET50, AE_SMALL, AECNN, AECNN_AE, ARCHS, COLORNET, PARTS, Arch
from ..core.config import ModelConfig
from .colorizers import create_colorizer
from ..core.errors import UsageError



class ColorNet(nn.Module):
    def __init__(self, colorizer: nn.Module, backbone: nn.Module):
        super().__init__()
        self.colorizer = colorizer
        self.backbone = backbone
        self._head_name = next(n for n, m in backbone.named_modules() if m is backbone.get_classifier())

    def forward(self, x):
        return self.backbone(self.colorizer(x))

    @property
    def device(self) -> torch.device:  # fastai's DistributedTrainer asks the model for it
        return next(self.parameters()).device

    @property
    def head(self) -> nn.Module:
        return self.backbone.get_classifier()

    def part_of(self, key: str) -> str:
        """Which part a parameter or state-dict key belongs to."""
        if key.startswith("colorizer."):
            return "colorizer"
        return "head" if key.startswith(f"backbone.{self._head_name}.") else "body"

    def set_head(self, head: nn.Module) -> None:
        """Put `head` where the backbone's classifier is (forward_head(pre_logits=True) stays the pooled features)."""
        *path, name = self._head_name.split(".")
        parent = self.backbone.get_submodule(".".join(path)) if path else self.backbone
        setattr(parent, name, head)

    def reset_head(self) -> None:
        for m in self.head.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()


class KNNHead(nn.Module):
    """model.head knn (MedMNIST+'s k-NN protocol): the majority vote of the `k` training images nearest in the frozen
    body's pooled features (Euclidean, as scikit-learn's KNeighborsClassifier). The support set - features, targets
    and whether one class per image - lives in buffers, so best.pth holds the whole model. Its output is the vote
    share under the task's activation: log shares (softmax) or their logits (sigmoid); ties go to the lower class,
    as scikit-learn's and scipy's mode do."""

    def __init__(self, n_features: int, n_out: int, k: int = 11):
        super().__init__()
        self.k = k
        self.register_buffer("support", torch.zeros(0, n_features))
        self.register_buffer("support_targets", torch.zeros(0, n_out))
        self.register_buffer("single_label", torch.tensor(True))

    def fit(self, features: torch.Tensor, targets: torch.Tensor, single_label: bool) -> None:
        self.support = features.detach().float().to(self.support.device)
        self.support_targets = targets.detach().float().to(self.support.device)
        self.single_label = torch.tensor(bool(single_label), device=self.support.device)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("support", "support_targets"):  # a fitted support set has as many rows as training images
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name], device=self.support.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x):
        n = self.support.shape[0]
        if n == 0:  # not fitted yet (the check before a run starts): no votes
            return x.new_zeros(x.shape[0], self.support_targets.shape[1])
        x, s = x.double(), self.support.double()  # float64: the nearest neighbours of exact Euclidean distances
        dist = (x * x).sum(1, keepdim=True) - 2 * x @ s.T + (s * s).sum(1)
        nearest = dist.topk(min(self.k, n), dim=1, largest=False).indices
        votes = self.support_targets[nearest]  # (images, k, outputs); NaN: a neighbour's unknown label (u-ignore)
        known = ~torch.isnan(votes)
        shares = torch.where(known, votes, torch.zeros_like(votes)).sum(1) / known.sum(1).clamp_min(1)
        if self.single_label:
            return torch.log(shares.clamp_min(1e-6))
        shares = shares.clamp(1e-6, 1 - 1e-6)
        return torch.log(shares) - torch.log1p(-shares)


def knn_head(model: nn.Module) -> KNNHead | None:
    head = getattr(model, "head", None)
    return head if isinstance(head, KNNHead) else None


def _backbone(cfg: ModelConfig, n_out: int, in_chans: int = 3) -> nn.Module:
    return create_backbone(cfg.backbone, n_out, pretrained=cfg.pretrained, weights=cfg.weights, tag=cfg.pretrained_tag,
                           in_chans=in_chans)


def _colornet(cfg, n_out, stats):
    colorizer = create_colorizer(cfg.colorizer, *stats)
    net = ColorNet(colorizer, _backbone(cfg, n_out, getattr(colorizer, "backbone_in_chans", 3)))
    if cfg.head == "knn":
        net.set_head(KNNHead(net.backbone.num_features, n_out, cfg.knn_k))
    return net


def _aecnn(cfg, n_out, stats):
    return ColorNet(AECNNFrontEnd(), _backbone(cfg, n_out))


def _timm_autoencoder(cfg, n_out, stats):
    return TimmAutoencoder(cfg.backbone, cfg.pretrained, cfg.weights, cfg.pretrained_tag)


BUILDERS: dict[Arch, Callable] = {  # (ModelConfig, n_out, (mean, std)) -> nn.Module, for each core.archs entry
    COLORNET: _colornet,
    AECNN: _aecnn,
    AE_SMALL: lambda cfg, n_out, stats: ResNetAutoencoder(SMALL),
    AE_BIG: lambda cfg, n_out, stats: ResNetAutoencoder(BIG),
    AE_RESNET50: _timm_autoencoder,
    AECNN_AE: lambda cfg, n_out, stats: FrontEndAutoencoder(),
}


def build_model(cfg: ModelConfig, n_out: int, stats: tuple[float, float] = (0.5028, 0.2902)) -> nn.Module:
    """The recipe's architecture; `stats` (data.mean, data.std) tell fixed front ends how inputs were normalised."""
    return BUILDERS[ARCHS.get(cfg.arch)](cfg, n_out, stats)


def part_of(model: nn.Module, key: str) -> str:
    """colorizer / body / head of a parameter or state-dict key; autoencoders are all body (but AECNN's front end)."""
    if hasattr(model, "part_of"):
        return model.part_of(key)
    return "colorizer" if key.startswith("colorizer.") else "body"


def part_parameters(model: nn.Module, part: str) -> list[nn.Parameter]:
    return [p for k, p in model.named_parameters() if part_of(model, k) == part]


def init_sources(cfg: ModelConfig) -> list[tuple[str, list[str]]]:
    """model.init_from (one source, or a list) paired with model.init_parts (a list of parts, or one list each)."""
    if not cfg.init_from:
        return []
    if isinstance(cfg.init_from, str):
        return [(cfg.init_from, list(cfg.init_parts))]
    parts = cfg.init_parts if cfg.init_parts and isinstance(cfg.init_parts[0], list) else None
    if parts is None or len(parts) != len(cfg.init_from):
        raise UsageError("model.init_from is a list: give model.init_parts as one list of parts per entry, "
                         "e.g. [[body, head], [colorizer]]")
    return list(zip(cfg.init_from, parts))


def load_parts(model: nn.Module, checkpoint: str | Path, parts=("colorizer", "body")) -> None:
    """Copy some parts (colorizer, body, head) of another run's checkpoint into `model` (mode 2 and 3 starts)."""
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise UsageError(f"cannot transfer {sorted(unknown)}; choose from {', '.join(PARTS)}")
    path = Path(checkpoint)
    theirs, own = read_state_dict(path), model.state_dict()
    wanted = [k for k in own if part_of(model, k) in parts]
    missing = [k for k in wanted if k not in theirs]
    if missing:
        raise UsageError(f"checkpoint {path} does not fit this model: {len(missing)} missing keys "
                         f"(e.g. {missing[0]}); was it trained with another backbone or colorizer?")
    bad = [k for k in wanted if theirs[k].shape != own[k].shape]
    if bad:
        raise UsageError(f"checkpoint {path} does not fit this model: {bad[0]} has shape "
                         f"{tuple(theirs[bad[0]].shape)}, expected {tuple(own[bad[0]].shape)}")
    model.load_state_dict({k: theirs[k] for k in wanted}, strict=False)


def is_support_set(model: nn.Module, key: str) -> bool:
    """A k-NN head's support-set buffer: its rows are the training images, so any number fits."""
    return knn_head(model) is not None and part_of(model, key) == "head" and key.rsplit(".", 1)[-1].startswith(
        "support")


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load a whole-model checkpoint (best.pth) strictly; a mismatch is one line naming the file and the keys."""
    path = Path(path)
    sd = read_state_dict(path)
    own = {k: sd[k] if k in sd and is_support_set(model, k) else v for k, v in model.state_dict().items()}
    problem = state_dict_mismatch(own, sd)
    if problem:
        raise UsageError(f"checkpoint {path} does not fit this model: {problem}")
    model.load_state_dict(sd)


# ---- probabilities as predict gives them, and ensembles ------------------------------------------------------

PROB_EPS = 1e-7  # calibration.EPS: probabilities are clipped to [EPS, 1 - EPS] before a logit


class Calibrated(nn.Module):
    """A classifier's probabilities as `medcolor predict` computes them: the float32 activation, then (with a
    calibration's temperatures) in float64 the clipped logit (or log) divided by the temperature."""

    def __init__(self, model: nn.Module, softmax: bool, temperatures: list[float] | None):
        super().__init__()
        self.model, self.softmax = model, softmax
        self.register_buffer("temperature", torch.tensor(temperatures or [1.0], dtype=torch.float64))
        self.scaled = temperatures is not None

    def forward(self, x):
        logits = self.model(x)
        p = (torch.softmax(logits, -1) if self.softmax else torch.sigmoid(logits)).double()
        if not self.scaled:
            return p.float()
        if self.softmax:
            return torch.softmax(torch.log(p.clamp(PROB_EPS, 1.0)) / self.temperature[0], -1).float()
        p = p.clamp(PROB_EPS, 1 - PROB_EPS)
        return torch.sigmoid((torch.log(p) - torch.log1p(-p)) / self.temperature).float()


class MeanOfMembers(nn.Module):
    """An ensemble as one network: the mean of its members' calibrated probabilities, returned as logits (log p for
    softmax, logit p for sigmoid) so the loss's activation gives that mean back - fastai's get_preds, export and
    Grad-CAM treat it like any classifier. `members`: Calibrated modules."""

    def __init__(self, members: list[Calibrated], softmax: bool):
        super().__init__()
        self.members, self.softmax = nn.ModuleList(members), softmax

    def forward(self, x):
        p = torch.stack([m(x).double() for m in self.members]).mean(0)
        if self.softmax:
            return torch.log(p.clamp(PROB_EPS, 1.0)).float()
        p = p.clamp(PROB_EPS, 1 - PROB_EPS)  # a member without calibration can give exactly 0 or 1
        return (torch.log(p) - torch.log1p(-p)).float()
