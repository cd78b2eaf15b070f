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

from .archs import ARCHS, DEFAULT_ARCH, MODES, PARTS, colorizer_archs, gray_replicated, mode_choices
from .errors import UsageError, all_problems, closest
from .io import is_plain_name

MAX_IMAGE_SIZE = 4096


def failed(checks) -> list[str]:
    """The messages of the (ok, message) checks that failed."""
    return [message for ok, message in checks if not ok]


@dataclass
class Network:
    """The network a run trains and model.json keeps: its architecture (what best.pth's shapes depend on) and how
    its parts train (mode, BatchNorm) - everything of `model:` but where the weights start."""
    arch: str = DEFAULT_ARCH
    backbone: str = "resnet18"
    colorizer: str = "none"
    mode: int = 1
    # BatchNorm statistics kept (layers in eval mode while training): null - those of frozen parts (fastai's
    # BnFreeze); true - also the body's while it trains (mode 2); false - none, every BatchNorm layer updates them
    freeze_bn_stats: Optional[bool] = None
    train_bn: bool = False     # frozen parts' BatchNorm affine parameters train too (fastai's train_bn)
    train_stem: bool = False   # the backbone's stem trains in a mode that freezes the body
    head: Literal["linear", "knn"] = "linear"  # knn: majority vote of the k nearest training images' features
    knn_k: int = 11            # head knn: neighbours that vote (MedMNIST+: 11)


@dataclass
class WeightsSource:
    """Where a run's weights start: ImageNet (timm's pretrained weights, or a file), parts of other runs."""
    pretrained: bool = False
    pretrained_tag: Optional[str] = None  # timm weight tag used with pretrained (tv_in1k: torchvision's, the thesis's)
    weights: Optional[str] = None
    init_from: Union[str, list[str], None] = None
    init_parts: list[Any] = field(default_factory=lambda: ["colorizer", "body"])  # one list per init_from entry


@dataclass
class ModelConfig(WeightsSource, Network):
    """A recipe's `model:` section: the network, and where its weights start (one flat mapping in YAML)."""

    @property
    def network(self) -> Network:
        return Network(**{f.name: getattr(self, f.name) for f in dataclasses.fields(Network)})

    @property
    def start(self) -> WeightsSource:
        return WeightsSource(**{f.name: getattr(self, f.name) for f in dataclasses.fields(WeightsSource)})

    @classmethod
    def of(cls, network: Network, start: WeightsSource | None = None) -> "ModelConfig":
        return cls(**dataclasses.asdict(network), **dataclasses.asdict(start or WeightsSource()))

    def problems(self) -> list[str]:
        parts = [p for entry in self.init_parts for p in (entry if isinstance(entry, list) else [entry])]
        return failed([(self.mode in MODES, f"model.mode must be {mode_choices()}, got {self.mode}"),
                       (self.arch in ARCHS, f"model.arch {self.arch!r} is unknown; use {', '.join(ARCHS)}"),
                       (self.head != "knn" or self.knn_k >= 1, f"model.knn_k must be at least 1, got {self.knn_k}")]) + \
            [f"model.init_parts entries must be {', '.join(PARTS[:-1])} or {PARTS[-1]}, got {p!r}"
             for p in parts if p not in PARTS]


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

    def problems(self) -> list[str]:
        """Ranges the types cannot say: each would otherwise end in a NaN loss or an empty split much later."""
        return failed([
            (self.std > 0, f"data.std must be positive, got {self.std}"),
            (0 <= self.valid_pct < 1, f"data.valid_pct must be in [0, 1), got {self.valid_pct}"),
            (0 <= self.test_pct < 1, f"data.test_pct must be in [0, 1), got {self.test_pct}"),
            (0 < self.subset.fraction <= 1, f"data.subset.fraction must be in (0, 1], got {self.subset.fraction}"),
            (0 <= self.p_affine <= 1, f"data.p_affine must be in [0, 1], got {self.p_affine}"),
            (self.max_zoom >= 1, f"data.max_zoom must be at least 1, got {self.max_zoom}"),
            (self.rotate_deg >= 0, f"data.rotate_deg must be at least 0, got {self.rotate_deg}"),
            (0 <= self.contrast < 1, f"data.contrast must be in [0, 1), got {self.contrast}"),
            (self.folds == 0 or self.folds >= 2, f"data.folds must be 0 (no cross-validation) or at least 2, got "
                                                 f"{self.folds}"),
            (0 <= self.fold <= max(self.folds, 0), f"data.fold must be in 1..data.folds ({self.folds}), got "
                                                   f"{self.fold}" if self.folds else
             f"data.fold={self.fold} needs data.folds (or `medcolor run recipe ... --folds K`)"),
            (self.pad_to is None or 1 <= self.pad_to <= 4096, f"data.pad_to must be between 1 and 4096 px (or "
                                                               f"null), got {self.pad_to}")])


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

    def problems(self) -> list[str]:
        positive = [f"{name} must be at least 1, got {value}" for name, value in
                    (("train.epochs", self.epochs), ("train.bs", self.bs), ("train.image_size", self.image_size))
                    if value < 1]
        return positive + failed([
            # a typo like 100000 would otherwise end in the kernel's out-of-memory kill
            (self.image_size <= MAX_IMAGE_SIZE, f"train.image_size must be at most {MAX_IMAGE_SIZE} (the thesis's "
                                                f"largest is 896), got {self.image_size}"),
            (self.max_lr > 0, f"train.max_lr must be positive, got {self.max_lr}"),
            (self.bs >= 2, f"train.bs must be at least 2 (BatchNorm needs two images per batch), got "
                                          f"{self.bs}"),
            (0 < self.pct_start < 1, f"train.pct_start (the warm-up share of one-cycle) must be in (0, 1), got "
                                     f"{self.pct_start}"),
            (self.div > 0, f"train.div (max_lr / starting lr) must be positive, got {self.div}"),
            (self.div_final > 0, f"train.div_final must be positive, got {self.div_final}"),
            (self.wd >= 0, f"train.wd must be at least 0, got {self.wd}"),
            (0 <= self.mom < 1, f"train.mom must be in [0, 1), got {self.mom}"),
            (self.num_workers is None or self.num_workers >= 0, f"train.num_workers must be at least 0 (or null for "
                                                                f"automatic), got {self.num_workers}"),
            (self.eval_every_iters >= 0, f"train.eval_every_iters must be at least 0, got {self.eval_every_iters}"),
            (0 < self.plateau_factor < 1 or self.schedule != "plateau", f"train.plateau_factor must be in (0, 1), "
                                                                        f"got {self.plateau_factor}"),
            (self.lr_mult >= 1, f"train.lr_mult (max_lr / the body's learning rate) must be at least 1, got "
                                f"{self.lr_mult}"),
            (self.freeze_epochs >= 0, f"train.freeze_epochs must be at least 0, got {self.freeze_epochs}"),
            (not self.freeze_epochs or self.schedule == "one_cycle", "train.freeze_epochs needs "
                                                                     "train.schedule=one_cycle"),
            (self.early_stop_patience >= 0, f"train.early_stop_patience must be at least 0 (0: never stop early), "
                                            f"got {self.early_stop_patience}")])

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

    def problems(self) -> list[str]:
        """Every section's own problems, then what one section's values mean for another's. (Checks that need a
        registry above core - tasks, MedMNIST's colours - are `training.recipes.registry_problems`.)"""
        named = failed([(not self.name or is_plain_name(self.name), f"name {self.name!r} must be one plain folder "
                                                                    f"name (no '/', '..' or absolute paths)")])
        return named + self.train.problems() + self.model.problems() + self.schedule_problems() + \
            self.data_problems() + self.start_problems() + (self.knn_problems() if self.model.head == "knn" else [])

    def schedule_problems(self) -> list[str]:
        """Fine-tuning's tools need a body that trains, and a classifier's parts."""
        m, t = self.model, self.train
        mode, arch = MODES.get(m.mode), ARCHS.find(m.arch)
        parts = bool(arch and (arch.colorizer or arch.front_end))  # a classifier made of colorizer / body / head
        return failed([(not t.freeze_epochs or not mode or mode.trains("body"),
                        f"train.freeze_epochs freezes the body for the first epochs of mode 2; model.mode {m.mode} "
                        f"never trains the body"),
                       (not (t.lr_mult != 1 or t.freeze_epochs) or parts or not arch,
                        f"train.lr_mult and train.freeze_epochs need a classifier's parts (body, colorizer, head); "
                        f"model.arch {m.arch!r} has none")])

    def start_problems(self) -> list[str]:
        """A mode that trains only the head needs trained parts to start from (without a colorizer, ImageNet
        weights are enough: that is mode 1, Table 4.3)."""
        m, mode = self.model, MODES.get(self.model.mode)
        imagenet_probe = gray_replicated(m.colorizer) and (m.pretrained or m.weights)
        return failed([(not (mode and mode.head_only) or m.init_from or imagenet_probe,
                        f"model.mode {m.mode} trains only the head: set model.init_from to a run folder or "
                        f"recipe:NAME (or, without a colorizer, load ImageNet weights: model.pretrained / "
                        f"model.weights)")])

    def knn_problems(self) -> list[str]:
        """A k-NN head votes on frozen features: nothing trains, so one epoch (the validation pass) and a frozen
        body; a colorizer it would leave random must come trained."""
        m, t = self.model, self.train
        mode, arch = MODES.get(m.mode), ARCHS.find(m.arch)
        random_colorizer = bool(mode and mode.trains("colorizer") and not mode.trains("body")) and \
            not gray_replicated(m.colorizer)
        return failed([
            (bool(arch and arch.colorizer), f"model.head knn needs model.arch {colorizer_archs()}, got {m.arch!r}"),
            (not mode or not mode.trains("body"), "model.head knn votes on frozen features; model.mode 2 would train "
                                                  "the body (use 1 or 3)"),
            (t.epochs == 1 and not t.freeze_epochs, f"model.head knn has nothing to train: train.epochs must be 1 "
                                                    f"(its validation pass), got {t.epochs}"),
            (not random_colorizer, f"model.head knn trains nothing, so a {m.colorizer} colorizer would stay random in "
                                   f"mode {m.mode}; use colorizer none, or mode 3 with model.init_from a trained one")])

    def data_problems(self) -> list[str]:
        """What the data's images mean for the network input: MedMNIST files fix their images' size (data.size
        picks the file, train.image_size the input: smaller would shrink them); padding only grows."""
        d, size = self.data, self.train.image_size
        return failed([
            (d.reader != "medmnist" or size >= d.size, f"train.image_size={size} would shrink the {d.size} px images "
                                                       f"of data.size={d.size}; set train.image_size={d.size} (the "
                                                       f"MedMNIST+ protocol trains at the file's size)"),
            (not d.pad_to or d.pad_to >= size, f"data.pad_to={d.pad_to} is smaller than train.image_size={size}; "
                                               f"padding only adds pixels (set data.pad_to >= the image size, or "
                                               f"null)")])


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
