import pytest

from medcolor.data import load_data_config
from medcolor.data import memory
from medcolor.data.memory import load_all, use_memory


def test_auto_holds_what_fits_in_a_quarter_of_ram(monkeypatch, capsys):
    monkeypatch.setattr(memory, "total_ram", lambda: 4 * 2**30)
    auto = load_data_config("nih-sample")
    assert use_memory(auto, 2**30, "the images")
    assert not use_memory(auto, 2**30 + 1, "the 9 images")
    assert "the 9 images need about 1.0 GiB decoded, more than 25% of this machine's RAM" in capsys.readouterr().err
    assert use_memory(load_data_config("nih-sample", ["in_memory=always"]), 2**40, "x")
    assert not use_memory(load_data_config("nih-sample", ["in_memory=never"]), 1, "x")


def test_load_all_keeps_order_and_names_failures():
    def load(n):
        if n == 3:
            raise OSError("broken")
        if n == 4:
            raise OSError(24, "Too many open files")
        return n * n
    values, errors = load_all(load, range(6), workers=3)
    assert values == [0, 1, 4, None, None, 25]
    assert errors == [None, None, None, "OSError", "OSError (Too many open files)", None]


def test_a_bad_value_for_in_memory_is_a_usage_error():
    from medcolor.core.errors import UsageError

    with pytest.raises(UsageError, match="in_memory"):
        load_data_config("nih-sample", ["in_memory=maybe"])
