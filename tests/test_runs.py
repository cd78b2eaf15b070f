import signal
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from medcolor.errors import UsageError
from medcolor.runs import atomic_torch_save, atomic_write, new_run_dir


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path):
    with ThreadPoolExecutor(8) as pool:
        dirs = list(pool.map(lambda _: new_run_dir(tmp_path, "demo", "resnet18", 0), range(8)))
    assert len(set(dirs)) == 8 and all(d.is_dir() and (d / "plots").is_dir() for d in dirs)
    stems = {d.name.rsplit("-s0", 1)[0] for d in dirs}
    assert len(stems) <= 2  # same timestamp (or the next second), told apart by -2, -3, ...


def test_unwritable_runs_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UsageError, match="cannot create runs folder .*--runs-dir"):
        new_run_dir(blocker / "runs", "demo", "resnet18", 0)


def test_a_write_killed_midway_never_replaces_the_checkpoint(tmp_path):
    target = tmp_path / "last.pth"
    atomic_torch_save({"epoch": 1, "w": torch.ones(3)}, target)
    script = textwrap.dedent(f"""
        import os, signal, torch
        import medcolor.runs as runs
        real = os.fsync
        def die(fd):  # the process is killed after the new bytes are written, before the rename
            os.kill(os.getpid(), signal.SIGKILL)
        runs.os.fsync = die
        runs.atomic_torch_save({{"epoch": 2, "w": torch.zeros(10_000_000)}}, {str(target)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script])
    assert proc.returncode == -signal.SIGKILL
    loaded = torch.load(target, weights_only=True)
    assert loaded["epoch"] == 1 and torch.equal(loaded["w"], torch.ones(3))
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "last.pth"]
    assert all(name.startswith(".last.pth.") and name.endswith(".tmp") for name in leftovers)


def test_atomic_write_keeps_group_readable_permissions(tmp_path):
    atomic_write(tmp_path / "x.json", "{}")
    assert (tmp_path / "x.json").stat().st_mode & 0o044
