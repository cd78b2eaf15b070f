"""The architectures medcolor trains, by name, and what every layer asks of one: its task, which recipe fields it
reads, how it is described, what its training needs. The networks themselves are built in `nets.models`, which
pairs each entry with its builder; no other module compares an architecture's name to a literal."""
from __future__ import annotations

from dataclasses import dataclass

from .errors import UsageError
from .registry import Registry

PARTS = ("colorizer", "body", "head")  # what a colorizer network is made of: what modes freeze and runs transfer


@dataclass(frozen=True)
class Arch:
    name: str
    task: str
    backbone: bool = True      # model.backbone names the timm body it uses
    colorizer: bool = False    # model.colorizer is used: a colorizer -> body -> head network that modes split
    front_end: bool = False    # a learned compression front end, trained with an auxiliary reconstruction loss
    thesis_body: str | None = None  # the body the thesis names for it (`model summary --model`)

    def label(self, backbone: str | None) -> str:
        """'aecnn (densenet121)': the name, with the body for an architecture whose body is a choice."""
        return f"{self.name} ({backbone})" if self.backbone and not self.colorizer and backbone else self.name


ARCHS: Registry[Arch] = Registry("model.arch")


def _register(arch: Arch) -> Arch:
    return ARCHS.register(arch.name, arch)


COLORNET = _register(Arch("colornet", "classification", colorizer=True))
AECNN = _register(Arch("aecnn", "classification", front_end=True, thesis_body="densenet121"))
AE_SMALL = _register(Arch("ae-small", "reconstruction", backbone=False))
AE_BIG = _register(Arch("ae-big", "reconstruction", backbone=False))
AE_RESNET50 = _register(Arch("ae-resnet50", "reconstruction", thesis_body="resnet50"))
AECNN_AE = _register(Arch("aecnn-ae", "reconstruction", backbone=False))
DEFAULT_ARCH = COLORNET.name


@dataclass(frozen=True)
class Mode:
    """A transfer mode: which parts stay frozen, and how report and model cards name it."""
    number: int
    frozen: tuple[str, ...]
    description: str
    short: str

    @property
    def trainable(self) -> tuple[str, ...]:
        return tuple(p for p in PARTS if p not in self.frozen)

    def trains(self, part: str) -> bool:
        return part in self.trainable

    @property
    def head_only(self) -> bool:
        return self.trainable == ("head",)

    def label(self, with_colorizer: bool = True) -> str:
        """'mode 1 (colorizer + head)' as report and model cards name it; a run without a colorizer trains none."""
        short = self.short if with_colorizer else self.short.replace("colorizer + ", "")
        return f"mode {self.number} ({short})"


MODES = {
    1: Mode(1, ("body",), "colorizer + head trained, backbone body frozen (BN affine too)", "colorizer + head"),
    2: Mode(2, (), "everything trained (from the mode-1 result with a new head)", "fine-tune all"),
    3: Mode(3, ("colorizer", "body"), "head only (colorizer and backbone from another run)", "head only"),
}


def mode_choices() -> str:
    """'1, 2 or 3'"""
    names = [str(n) for n in MODES]
    return ", ".join(names[:-1]) + " or " + names[-1]


def get_mode(number: int) -> Mode:
    if number not in MODES:
        raise UsageError(f"unknown transfer mode {number!r}; use {mode_choices()}")
    return MODES[number]


NO_COLORIZER = ("none", "gray")  # the colorizer names that repeat the gray channel (nets.colorizers registers them)


def gray_replicated(colorizer: str) -> bool:
    """No colorizer: the gray image repeated to 3 channels (colorizer `none`, or its alias `gray`)."""
    return str(colorizer).lower() in NO_COLORIZER


def run_title(recipe) -> str:
    """What tells runs apart in figure titles, legends and headers: 'demo: efficientnet_lite0 + coloru colorizer,
    mode 1, seed 0' (a `config.Recipe`)."""
    m, arch = recipe.model, get_arch(recipe.model.arch)
    if arch.colorizer:
        colorizer = "no colorizer" if gray_replicated(m.colorizer) else f"{m.colorizer} colorizer"
        what = f"{m.backbone} + {colorizer}, mode {m.mode}"
    else:
        what = arch.label(m.backbone)
    return f"{recipe.name}: {what}, seed {recipe.train.seed}"


def get_arch(name: str) -> Arch:
    return ARCHS.get(name)


def uses_colorizer(name: str) -> bool:
    """Whether model.arch `name` (known or not) puts a colorizer in front of its body."""
    arch = ARCHS.find(name)
    return bool(arch and arch.colorizer)


def colorizer_archs() -> str:
    return ", ".join(name for name, arch in ARCHS.items() if arch.colorizer)
