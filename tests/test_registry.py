"""core/registry.py: the one "name -> entry" helper, and every registry built on it agreeing with the choices a
recipe's types allow."""
import typing

import pytest

from medcolor.core.config import TrainConfig
from medcolor.core.errors import UsageError
from medcolor.core.registry import Registry


def test_entries_register_by_call_or_decorator_and_list_in_order():
    reg = Registry("widget", key=str.lower)
    reg.register("alpha", 1)

    @reg.register("beta")
    def beta():
        return 2

    assert reg.names() == ["alpha", "beta"] and reg.choices("|") == "alpha|beta" and len(reg) == 2
    assert reg.get("ALPHA") == 1 and reg["beta"] is beta and "Beta" in reg and 3 not in reg
    assert reg.find("gamma") is None and reg.find(3) is None and list(reg.values()) == [1, beta]


def test_an_unknown_name_is_one_line_with_the_closest_names_and_every_choice():
    reg = Registry("colorizer")
    for name in ("deconv", "coloru", "none"):
        reg.register(name, name)
    with pytest.raises(UsageError, match=r"^unknown colorizer 'decnov' \(did you mean deconv\?\); choose from "
                                         r"deconv, coloru, none$"):
        reg.get("decnov")
    assert "did you mean" not in reg.unknown("zzz")
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("none", "again")


def test_a_case_blind_registry_suggests_for_any_case():
    reg = Registry("colorizer", key=str.lower)
    reg.register("deconv", 1)
    assert "did you mean deconv" in reg.unknown("DECNOV")


def _literal(field: str) -> list:
    return list(typing.get_args(typing.get_type_hints(TrainConfig)[field]))


def test_the_optimisers_mixes_and_losses_a_recipe_may_name_are_the_registered_ones():
    from medcolor.tasks.reconstruction import LOSSES
    from medcolor.training.callbacks import MIXES
    from medcolor.training.learner import OPTIMIZERS

    assert OPTIMIZERS.names() == _literal("opt")
    assert MIXES.names() == _literal("mix")
    assert LOSSES.names() == _literal("loss")


def test_the_tasks_a_recipe_may_name_are_the_registered_ones():
    from medcolor.core.config import Recipe
    from medcolor.tasks.interface import TASKS

    assert TASKS.names() == list(typing.get_args(typing.get_type_hints(Recipe)["task"]))
