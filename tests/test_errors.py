"""errors: the exception kinds and their exit codes, how interruptions are named, and the one-line helpers every
message uses (closest names, many problems at once)."""
import pytest

from medcolor.core.errors import (Interrupted, MedcolorError, RunError, Terminated, UsageError, all_problems, closest,
                             stop_signal)


def test_each_kind_of_failure_has_its_exit_code():
    assert (MedcolorError.exit_code, UsageError.exit_code, RunError.exit_code) == (2, 2, 1)
    assert issubclass(UsageError, MedcolorError) and issubclass(RunError, MedcolorError)
    assert UsageError("bad recipe").exit_code == 2 and str(UsageError("bad recipe")) == "bad recipe"
    assert RunError("NaN loss").exit_code == 1


def test_an_interruption_carries_the_exit_code_of_its_signal():
    assert Interrupted("stopped; kept to resume").exit_code == 130  # Ctrl-C by default
    sigterm = Interrupted("stopped", exit_code=143)
    assert sigterm.exit_code == 143 and str(sigterm) == "stopped" and isinstance(sigterm, MedcolorError)
    assert Interrupted.exit_code == 2  # the class keeps MedcolorError's; only instances carry the signal's


def test_sigterm_is_a_keyboard_interrupt_named_apart_from_ctrl_c():
    assert issubclass(Terminated, KeyboardInterrupt)  # so runs stop the way Ctrl-C stops them
    assert stop_signal(Terminated()) == ("SIGTERM", 143)
    assert stop_signal(KeyboardInterrupt()) == ("Ctrl-C", 130)


def test_closest_suggests_near_names_best_first_and_nothing_for_far_ones():
    names = ["resnet18", "resnet50", "densenet121", "efficientnet_lite0"]
    assert closest("resnet81", names, n=1) == " (did you mean resnet18?)"
    assert closest("resnet81", names) == " (did you mean resnet18, resnet50, densenet121?)"  # at most n, best first
    assert closest("efficientnet-lite0", names) == " (did you mean efficientnet_lite0?)"
    assert closest("xyz", names) == ""
    assert closest("anything", []) == ""


def test_closest_takes_any_iterable_of_names():
    assert closest("trian", {"train": 1, "valid": 2, "test": 3}) == " (did you mean train?)"  # a dict: its keys
    assert closest("valdi", (n for n in ("train", "valid"))) == " (did you mean valid?)"


@pytest.mark.parametrize("n", [1, 5])
def test_up_to_five_problems_are_all_shown_in_one_line(n):
    found = [f"problem {i}" for i in range(1, n + 1)]
    error = all_problems(found)
    assert isinstance(error, UsageError) and error.exit_code == 2
    assert str(error) == "; ".join(found) and "more" not in str(error)


def test_many_problems_show_the_first_five_and_how_many_more():
    error = all_problems([f"problem {i}" for i in range(1, 13)])
    assert str(error) == ("problem 1; problem 2; problem 3; problem 4; problem 5; and 7 more (12 problems in all)")
    assert str(all_problems(["a", "b", "c"], shown=2)) == "a; b; and 1 more (3 problems in all)"
    assert "\n" not in str(error)
