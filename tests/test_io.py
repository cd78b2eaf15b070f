import json
import math
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from medcolor.core.errors import UsageError
from medcolor.core.io import atomic_torch_save, atomic_write, claim_new, load_tensors, write_json


def test_a_write_killed_midway_never_replaces_the_checkpoint(tmp_path):
    target = tmp_path / "last.pth"
    atomic_torch_save({"epoch": 1, "w": torch.ones(3)}, target)
    script = textwrap.dedent(f"""
        import os, signal, torch
        import medcolor.core.io as io
        real = os.fsync
        def die(fd):  # the process is killed after the new bytes are written, before the rename
            os.kill(os.getpid(), signal.SIGKILL)
        io.os.fsync = die
        io.atomic_torch_save({{"epoch": 2, "w": torch.zeros(10_000_000)}}, {str(target)!r})
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


def test_claimed_names_never_overwrite(tmp_path):
    first, second = claim_new(tmp_path / "plot.png"), claim_new(tmp_path / "plot.png")
    assert (first.name, second.name) == ("plot.png", "plot-2.png")
    assert claim_new(tmp_path / "eval-test", is_dir=True).is_dir()
    assert claim_new(tmp_path / "eval-test", is_dir=True).name == "eval-test-2"


def test_json_is_always_strict(tmp_path):
    write_json(tmp_path / "m.json", {"auc": float("nan"), "best": -math.inf, "ok": [1.0, float("inf")]})
    assert json.loads((tmp_path / "m.json").read_text(), parse_constant=lambda c: 1 / 0) == \
        {"auc": None, "best": None, "ok": [1.0, None]}


def test_a_pickle_is_never_unpickled_and_says_so(tmp_path):
    import pickle

    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"x": object()}))
    with pytest.raises(UsageError, match="not a plain weights file .* never unpickles code"):
        load_tensors(tmp_path / "evil.pth")


def test_a_truncated_checkpoint_is_named_as_such(tmp_path):
    torch.save({"w": torch.zeros(1000)}, tmp_path / "last.pth")
    (tmp_path / "cut.pth").write_bytes((tmp_path / "last.pth").read_bytes()[:300])
    with pytest.raises(UsageError) as e:
        load_tensors(tmp_path / "cut.pth")
    assert str(e.value) == f"cannot read checkpoint {tmp_path / 'cut.pth'}: the file is truncated or damaged " \
        "(an interrupted copy or save?)"


@pytest.mark.parametrize("target, message", [
    ("exists.csv", "already exists; choose another --out"), ("missing/p.csv", "does not exist; create it first"),
    ("exists.csv/p.csv", "is a file, not a folder")])
def test_output_files_are_checked_before_any_work(tmp_path, target, message):
    from medcolor.core.io import check_output_file

    (tmp_path / "exists.csv").write_text("x")
    with pytest.raises(UsageError, match=message):
        check_output_file(tmp_path / target)
    check_output_file(tmp_path / "new.csv")


# ---- a full disk and a read-only file system (real mounts: CI runs as root, so permissions alone prove nothing) --

def _mount(path, *options):
    import subprocess

    path.mkdir(parents=True, exist_ok=True)
    run = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(path)], capture_output=True)
    if run.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({run.stderr.decode().strip() or 'not root'})")


def _umount(path):
    import subprocess
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture(params=["read-only", "full"])
def cramped(request, tmp_path):
    """A copy of the version-1 demo run on a read-only or a full file system, and a folder there."""
    import shutil
    import subprocess

    disk = tmp_path / "disk"
    _mount(disk, "size=3m")
    request.addfinalizer(lambda: _umount(disk))
    run = Path(shutil.copytree(Path(__file__).parent / "data" / "legacy-run-v1", disk / "runs" / "demo" / "r1"))
    (disk / "out").mkdir()
    if request.param == "read-only":
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    else:
        with open(disk / "filler", "wb") as f:  # fill it up
            try:
                while True:
                    f.write(b"\0" * (1 << 16))
                    f.flush()
            except OSError:
                pass
    return request.param, disk, run


def _listing(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_a_full_or_read_only_disk_is_one_line_and_leaves_nothing(cramped, sample_dir, capsys, monkeypatch):
    from medcolor.cli import main

    kind, disk, run = cramped
    image = str(next((sample_dir / "images").glob("*.png")))
    monkeypatch.setenv("MEDCOLOR_CACHE_DIR", str(disk / "cache"))
    before = _listing(disk)
    commands = [["evaluate", str(run)], ["export", str(run)], ["export", str(run), "--format", "torchscript"],
                ["interpret", str(run), "--top-losses", "2"], ["calibrate", str(run), "--replace"],
                ["recipes", "cp", "demo", str(disk / "out" / "mine.yaml")],
                ["report", str(run.parent), "--vs", "1", "--vs-plot", str(disk / "out" / "vs.png")],
                ["data", "cache", "nih-sample", "--size", "32"],
                ["predict", str(run), image, "--out", str(disk / "out" / "p.csv")]]
    for args in commands:
        code = main(args)
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
        expected = 2 if kind == "read-only" else 1  # an unwritable folder is bad input; a full disk a failure
        assert code == expected and len(lines) == 1 and "Traceback" not in err, (kind, args, err)
        assert str(disk) in lines[0] and any(w in lines[0] for w in ("space", "Read-only", "writable")), (kind, args, lines)
        assert _listing(disk) == before, (kind, args)  # nothing half-written, nothing changed
