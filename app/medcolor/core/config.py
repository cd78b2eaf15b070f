"""Typed configuration: the validated form of a recipe that the builders take (YAML -> dataclasses -> builders).

`from_dict` checks every field against its annotation and reports *all* problems at once;
`apply_overrides` applies `a.b=value` strings (values parsed as YAML scalars) before validation.
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Union

import yaml

from .errors import UsageError, all_problems, closest


def gray_replicated(colorizer: str) -> bool:
    """No colorizer: the gray image repeated to 3 channels (colorizer `none`, or its alias `gray`)."""
    return str(colorizer).lower() in ("none", "gray")


@dataclass
class ModelConfig:
    arch: str = "colornet"
    backbone: str = "resnet18"
    colorizer: str = "none"
    mode: int = 1
    pretrained: bool = False
    pretrained_tag: Optional[str] = None  # timm weight tag used with pretrained (tv_in1k: torchvision's, the thesis's)
    weights: Optional[str] = None
    init_from: Union[str, list[str], None] = None
    init_parts: list[Any] = field(default_factory=lambda: ["colorizer", "body"])  # one list per init_from entry
    # BatchNorm statistics kept (layers in eval mode while training): null - those of frozen parts (fastai's
    # BnFreeze); true - also the body's while it trains (mode 2); false - none, every BatchNorm layer updates them
    freeze_bn_stats: Optional[bool] = None
    train_bn: bool = False     # frozen parts' BatchNorm affine parameters train too (fastai's train_bn)
    train_stem: bool = False   # the backbone's stem trains in a mode that freezes the body
    head: Literal["linear", "knn"] = "linear"  # knn: majority vote of the k nearest training images' features
    knn_k: int = 11            # head knn: neighbours that vote (MedMNIST+: 11)

    @property
    def gray_replicated(self) -> bool:
        return gray_replicated(self.colorizer)


@dataclass
class SubsetConfig:
    fraction: float = 1.0
    seed: int = 0


@dataclass
class DataConfig:
    spec: str = "nih-sample"
    reader: str = "chestxray14"
    root: Optional[str] = None
    csv: Optional[str] = None
    valid_csv: Optional[str] = None
    test_csv: Optional[str] = None
    labels: Union[str, list[str], None] = None
    any_finding: bool = False
    policy: str = "thesis"
    policy_map: dict[str, str] = field(default_factory=dict)
    frontal_only: bool = False
    subset: SubsetConfig = field(default_factory=SubsetConfig)
    body_part: str = "XR_SHOULDER"
    valid_pct: float = 0.1
    split_seed: int = 0
    path_col: str = "path"
    split_col: Optional[str] = None
    allow_absolute_paths: bool = False
    on_bad_image: Literal["skip", "error"] = "skip"
    verify_images: Literal["auto", "always", "never"] = "auto"  # auto: decode-check tables up to 20,000 images
    in_memory: Literal["auto", "always", "never"] = "auto"  # decode once into RAM (auto: when <= 1/4 of RAM)
    mean: float = 0.5028
    std: float = 0.2902
    augment: bool = True
    rotate_deg: float = 10.0
    max_zoom: float = 1.1
    p_affine: float = 0.75
    flip: bool = False            # horizontal flips (AECNN)
    vflip: bool = False           # vertical flips too (reconstruction patches)
    contrast: float = 0.0         # contrast jitter (AECNN: 0.25)
    resize_to: Optional[int] = None   # resize first, then random crops of train.image_size (AECNN: 256 -> 224)
    valid_resize: Optional[int] = None  # with resize_to: validation / test images resized to this (no crop)
    crop: Literal["resize", "random"] = "resize"  # reconstruction: resize slices, or random patches
    denoise: bool = False         # reconstruction: blur / cut-out / dropout on the input only
    test_pct: float = 0.0         # share of subjects held out for testing (ixi)
    slices: str = "50:110"
    name: Optional[str] = None    # medmnist: the dataset (pneumoniamnist, chestmnist, organamnist, ...)
    size: int = 28                # medmnist: which of its files, 28, 64, 128 or 224 px
    as_rgb: bool = False          # medmnist: gray images repeated to 3 channels, ImageNet-normalised (MedMNIST+)
    pad_to: Optional[int] = None  # zero-pad normalised images, centred, to pad_to x pad_to (MedMNIST+: 224)
    folds: int = 0                # K-fold cross-validation: train + valid pooled into K patient-grouped folds
    fold: int = 0                 # with folds: which fold (1..K) is this run's valid split (`run --folds K` sets it)
    fold_seed: int = 0            # the seed of the fold assignment (the same folds for every training seed)
    use_test: bool = True         # false: the test split is never read, the run is scored on valid (medcolor tune)
    description: str = ""


@dataclass
class TrainConfig:
    epochs: int = 1
    max_lr: float = 2e-3
    lr_mult: float = 1.0          # discriminative rates: the body's groups train at max_lr / lr_mult (fastai's slice)
    freeze_epochs: int = 0        # mode 2: epochs with the body frozen before train.epochs of all (fastai's fine_tune)
    opt: Literal["sgd", "adam", "adamw", "rmsprop"] = "sgd"
    mom: float = 0.9
    bs: int = 16
    image_size: int = 320
    wd: float = 0.0
    pct_start: float = 0.25
    div: float = 25.0
    div_final: float = 1e5
    eval_every_iters: int = 0
    seed: int = 0
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    fp16: bool = False            # on a GPU: fastai's float16 mixed precision (MixedPrecision)
    bf16: bool = False            # on a GPU: bfloat16 mixed precision (no loss scaling; Ampere and later)
    channels_last: bool = True
    compile: bool = False         # torch.compile the model (nn.Module.compile: checkpoint keys stay the same)
    num_workers: Optional[int] = None  # DataLoader worker processes; None: 0 on <= 2 cores, else cores - 1 (<= 8)
    loggers: list[Literal["csv", "tensorboard", "wandb"]] = field(default_factory=lambda: ["csv"])
    lr_find: bool = False  # run fastai's LR finder first and keep plots/lr_find.png in the run folder
    schedule: Literal["one_cycle", "plateau", "cosine"] = "one_cycle"  # cosine: per epoch, no warm-up (MedMNIST+)
    plateau_factor: float = 0.1
    plateau_patience: int = 5
    min_lr: float = 0.0
    monitor: Optional[str] = None  # what picks best.pth and early stopping: valid_loss, or null for the task's score
    early_stop_patience: int = 0  # stop after this many epochs without a better monitor value (0: never)
    loss: Literal["auto", "mse", "dssim"] = "auto"
    mix: Literal["none", "mixup", "cutmix", "fmix"] = "none"
    pos_weight: Optional[Literal["auto"]] = None  # auto: BCE pos_weight negatives / positives per label (train
    # split, clipped to [0.01, 100]); single-label: cross-entropy class weights n / (classes x n_class)
    sampler: Literal["shuffle", "balanced"] = "shuffle"  # balanced: fastai's WeightedDL, rare classes drawn as often
    aux_weight: float = 0.1   # AECNN: loss = (1 - w) * BCE + w * MSE of the reconstruction

    @property
    def total_epochs(self) -> int:
        """The schedule's length: the frozen-body epochs first (train.freeze_epochs), then train.epochs."""
        return self.freeze_epochs + self.epochs


@dataclass
class Recipe:
    name: str = ""
    description: str = ""
    task: Literal["classification", "reconstruction"] = "classification"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    metrics: list[str] = field(default_factory=list)  # empty: every metric the task computes


# ---- validation --------------------------------------------------------------------------------------

def from_dict(cls, data: dict, where: str = "") -> Any:
    """Build dataclass `cls` from a plain dict, raising one UsageError that lists every problem."""
    errors: list[str] = []
    obj = _build(cls, data, where, errors)
    if errors:
        raise all_problems(errors)
    return obj


def _build(cls, data, where, errors):
    if not isinstance(data, dict):
        errors.append(f"{where or 'config'} must be a mapping, got {type(data).__name__}")
        return cls()
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            errors.append(f"unknown key {_join(where, key)}{closest(key, names)}")
    kwargs = {}
    for name in names:
        if name in data:
            kwargs[name] = _check(hints[name], data[name], _join(where, name), errors)
    return cls(**kwargs)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else str(key)


def _check(tp, value, where, errors):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where, errors)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for option in options:
            trial: list[str] = []
            out = _check(option, value, where, trial)
            if not trial:
                return out
        errors.append(f"{where} must be {' or '.join(_name(o) for o in options)}, got {value!r}")
        return value
    if origin is Literal:
        if value not in args:
            errors.append(f"{where} must be one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            errors.append(f"{where} must be a list, got {value!r}")
            return value
        return [_check(args[0], v, f"{where}[{i}]", errors) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            errors.append(f"{where} must be a mapping, got {value!r}")
            return value
        return {k: _check(args[1], v, f"{where}.{k}", errors) for k, v in value.items()}
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str) and _SCIENTIFIC.match(value):
        return float(value)
    if tp is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        errors.append(f"{where} must be {_name(tp)}, got {value!r}")
    return value


def _name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is list:
        return "a list"
    if origin is dict:
        return "a mapping"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)


def run_title(recipe: Recipe) -> str:
    """What tells runs apart in figure titles, legends and headers: 'demo: efficientnet_lite0 + coloru colorizer,
    mode 1, seed 0'."""
    m = recipe.model
    if m.arch == "colornet":
        colorizer = "no colorizer" if m.gray_replicated else f"{m.colorizer} colorizer"
        what = f"{m.backbone} + {colorizer}, mode {m.mode}"
    else:
        what = m.arch + (f" ({m.backbone})" if m.arch in ("aecnn", "ae-resnet50") else "")
    return f"{recipe.name}: {what}, seed {recipe.train.seed}"


# ---- key=value overrides -----------------------------------------------------------------------------

_SCIENTIFIC = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")

def format_override(key: str, value) -> str:
    """`key=value` with the value written as YAML reads it back (null, true, 1e-05)."""
    text = "null" if value is None else str(value).lower() if isinstance(value, bool) else repr(value) \
        if isinstance(value, float) else str(value)
    return f"{key}={text}"


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text or text.startswith("="):
        raise UsageError(f"override {text!r} must look like key=value, e.g. train.epochs=1")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str) and _SCIENTIFIC.match(value):  # YAML 1.1 reads 1e-3 as a string
        value = float(value)
    return key.strip().split("."), value


def apply_overrides(data: dict, overrides, schema=None) -> dict:
    """Set dotted keys in a nested dict; with a dataclass `schema`, unknown keys name the closest valid key."""
    out = _deepcopy(data)
    for text in overrides or []:
        path, value = parse_override(text)
        if schema is not None and _unwrap(check_path(schema, path, text)) is str and value is not None:
            value = text.split("=", 1)[1].strip()  # a string field keeps its text (YAML 1.1 reads 5:15 as 315)
        node = out
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[path[-1]] = value
    return out


def check_path(schema, path: list[str], text: str):
    """The type of the field `path` names; an unknown key is an error naming the closest valid one."""
    cls, done = schema, []
    for part in path:
        if not dataclasses.is_dataclass(cls):
            if typing.get_origin(cls) is dict:  # free-form mapping (e.g. data.policy_map.Edema)
                return typing.get_args(cls)[1]
            raise UsageError(f"override {text!r}: {'.'.join(done)} has no sub-keys")
        names = {f.name: f for f in dataclasses.fields(cls)}
        if part not in names:
            valid = [".".join(done + [n]) for n in names]
            raise UsageError(f"unknown key {'.'.join(done + [part])!r} in override {text!r}"
                             f"{closest('.'.join(done + [part]), valid)}")
        cls = _unwrap(typing.get_type_hints(cls)[part])
        done.append(part)
    return cls


def _unwrap(tp):
    if typing.get_origin(tp) is Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def _deepcopy(d):
    import copy
    return copy.deepcopy(d)
