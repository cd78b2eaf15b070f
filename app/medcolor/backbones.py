"""timm backbones with a new head, ImageNet weights from the hub (failing fast offline) or a local file."""
from __future__ import annotations

import inspect
import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

from torch import nn

from .errors import UsageError, closest


def check_backbone_name(name: str, tag: str | None = None) -> None:
    """The architecture exists in timm, and so does the weight tag (resnet18.tv_in1k) when one is named."""
    import timm

    arch = name.split(".")[0]
    if not timm.is_model(arch):
        raise UsageError(f"unknown timm backbone {name!r}{closest(arch, timm.list_models())}; "
                         f"`python -c \"import timm; print(timm.list_models('resnet*'))\"` lists them")
    tagged = with_tag(name, tag)
    if "." in tagged and tagged not in timm.list_pretrained(f"{arch}.*"):
        raise UsageError(f"timm has no ImageNet weights {tagged!r}; it has "
                         f"{', '.join(timm.list_pretrained(f'{arch}.*')) or 'none for ' + arch}")


def with_tag(name: str, tag: str | None) -> str:
    """resnet18 + tv_in1k -> resnet18.tv_in1k; a name that already carries a tag keeps it."""
    return f"{name}.{tag}" if tag and "." not in name else name


def create_backbone(name: str, n_out: int, pretrained: bool = False, weights: str | Path | None = None,
                    tag: str | None = None) -> nn.Module:
    """A timm model whose classifier is Linear(num_features, n_out); ImageNet weights from a file or the hub."""
    check_backbone_name(name, tag if pretrained and not weights else None)
    if weights:
        return _from_file(name, n_out, Path(weights))
    if pretrained:
        return _from_hub(with_tag(name, tag), n_out)
    return timm_model(name, n_out)


def timm_model(name: str, n_out: int) -> nn.Module:
    """The architecture alone, randomly initialised."""
    import timm

    return timm.create_model(name, pretrained=False, num_classes=n_out)


def _hub_reachable(timeout: float = 3.0) -> bool:
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _from_hub(name: str, n_out: int) -> nn.Module:
    import timm
    import huggingface_hub.constants as hub

    # Without a network, huggingface_hub retries for ~47 s; offline mode answers from the cache at once.
    if not _hub_reachable():
        hub.HF_HUB_OFFLINE = True
    try:
        return timm.create_model(name, pretrained=True, num_classes=n_out)
    except (OSError, RuntimeError, ValueError) as e:
        raise UsageError(
            f"could not load ImageNet weights for {name!r} ({type(e).__name__}: the hub is unreachable and they are "
            f"not cached); download them once where there is a network, or set model.weights=FILE to a local "
            f"state dict, or model.pretrained=false") from None


def read_state_dict(path: Path) -> dict:
    """A plain tensor dict from .safetensors or .pth (optionally wrapped in 'state_dict' / 'model'), never unpickling code."""
    from .io import load_tensors

    sd = load_tensors(path, "weights file")
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not sd:
        raise UsageError(f"weights file {path} holds no state dict")
    return sd


def state_dict_mismatch(own: dict, theirs: dict) -> str:
    """'' when `theirs` fits `own` key for key and shape for shape, else what is wrong, in one line."""
    missing, unexpected = [k for k in own if k not in theirs], [k for k in theirs if k not in own]
    wrong = [k for k in own if k in theirs and theirs[k].shape != own[k].shape]
    return "; ".join(f"{len(keys)} {what} (e.g. {keys[0]})" for what, keys in
                     (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", wrong)) if keys)


def _from_file(name: str, n_out: int, path: Path) -> nn.Module:
    model = timm_model(name, n_out)
    sd = _timm_key_filter(model)(read_state_dict(path), model)
    head = next(n for n, m in model.named_modules() if m is model.get_classifier())
    sd = {k: v for k, v in sd.items() if not k.startswith(head + ".")}  # the head is always new
    own = {k: v for k, v in model.state_dict().items() if not k.startswith(head + ".")}
    problem = state_dict_mismatch(own, sd)
    if problem:
        raise UsageError(f"weights file {path} does not fit backbone {name!r}: {problem}")
    model.load_state_dict(sd, strict=False)
    return model


def _timm_key_filter(model: nn.Module):
    """The key-renaming filter timm applies to this family's checkpoints (e.g. torchvision DenseNet names).

    timm's own file loading drops the check for missing keys when the head size changes, so a wrong file
    would load silently; we load ourselves and reuse only its filter, found next to the model class.
    """
    module = sys.modules[type(model).__module__]
    for attr in ("checkpoint_filter_fn", "_filter_torchvision_pretrained", "_filter_fn"):
        fn = getattr(module, attr, None)
        if callable(fn):
            params = inspect.signature(fn).parameters
            return (lambda sd, m, fn=fn: fn(sd, m)) if len(params) >= 2 else (lambda sd, m, fn=fn: fn(sd))
    return lambda sd, m: sd
