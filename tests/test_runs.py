from concurrent.futures import ThreadPoolExecutor

import pytest

from medcolor.errors import UsageError
from medcolor.runs import new_run_dir


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path):
    with ThreadPoolExecutor(8) as pool:
        dirs = list(pool.map(lambda _: new_run_dir(tmp_path, "demo", "resnet18", 0), range(8)))
    assert len(set(dirs)) == 8 and all(d.is_dir() and (d / "plots").is_dir() for d in dirs)
    stems = {d.name.rsplit("-s0", 1)[0] for d in dirs}
    assert len(stems) <= 2  # same timestamp (or the next second), told apart by -2, -3, ...


def test_unwritable_runs_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UsageError, match="cannot create a run folder in .*--runs-dir"):
        new_run_dir(blocker / "runs", "demo", "resnet18", 0)
