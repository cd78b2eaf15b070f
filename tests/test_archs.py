"""core/archs.py: the architectures and transfer modes by name, and what other modules ask of them."""
import pytest

from medcolor.core.archs import ARCHS, DEFAULT_ARCH, MODES, PARTS, get_arch, get_mode, mode_choices, uses_colorizer
from medcolor.core.config import ModelConfig
from medcolor.core.errors import UsageError


def test_every_architecture_has_a_builder_and_the_default_is_the_colorizer_network():
    from medcolor.nets.models import BUILDERS

    assert set(BUILDERS) == set(ARCHS.values())
    assert ModelConfig().arch == DEFAULT_ARCH and uses_colorizer(DEFAULT_ARCH) and not uses_colorizer("no-such")
    assert [a for a in ARCHS if get_arch(a).colorizer] == [DEFAULT_ARCH]


def test_labels_name_the_body_only_where_the_body_is_a_choice():
    labels = {name: arch.label("densenet121") for name, arch in ARCHS.items()}
    assert labels == {"colornet": "colornet", "aecnn": "aecnn (densenet121)", "ae-small": "ae-small",
                      "ae-big": "ae-big", "ae-resnet50": "ae-resnet50 (densenet121)", "aecnn-ae": "aecnn-ae"}
    assert {n: a.thesis_body for n, a in ARCHS.items() if a.thesis_body} == {"aecnn": "densenet121",
                                                                             "ae-resnet50": "resnet50"}


def test_modes_say_what_they_train_and_how_they_are_named():
    assert [MODES[n].trainable for n in (1, 2, 3)] == [("colorizer", "head"), PARTS, ("head",)]
    assert [MODES[n].head_only for n in (1, 2, 3)] == [False, False, True]
    assert MODES[2].trains("body") and not MODES[1].trains("body")
    assert MODES[1].label() == "mode 1 (colorizer + head)" and MODES[1].label(False) == "mode 1 (head)"
    assert mode_choices() == "1, 2 or 3"
    with pytest.raises(UsageError, match="unknown transfer mode 4; use 1, 2 or 3"):
        get_mode(4)


def test_an_unknown_architecture_names_the_closest():
    with pytest.raises(UsageError, match=r"unknown model.arch 'colornte' \(did you mean colornet"):
        get_arch("colornte")
