"""data.cache (`medcolor data cache`): resized gray PNG copies of a dataset's images, where they live, what a second
build does, when the DataLoaders use them, and a failure to write them (test_io covers a real full / read-only disk
through the command line)."""
import errno
import json
import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fixtures import write_image
from medcolor.core.config import DataConfig
from medcolor.data.cache import MANIFEST, build_cache, cache_base, cached_path, use_cache
from medcolor.data.images import open_gray
from medcolor.core.errors import RunError, UsageError


@pytest.fixture
def dataset(tmp_path, monkeypatch):
    """A folder dataset of four 40x48 gray PNGs (two of them RGB on disk), its DataConfig and its image paths; the
    cache goes to tmp_path/cache (not there yet)."""
    monkeypatch.setenv("MEDCOLOR_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "xrays"
    paths = []
    for i in range(4):
        path = root / ("normal" if i % 2 else "pneumonia") / f"img{i}.png"
        write_image(path, size=(40, 48), seed=i, mode="RGB" if i < 2 else "L")
        paths.append(str(path))
    return DataConfig(spec="folder", reader="folder", root=str(root)), paths


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_the_cache_lives_under_medcolor_cache_dir_one_folder_per_spec_and_root(dataset, tmp_path):
    cfg, _ = dataset
    base = cache_base(cfg)
    assert base.parent == tmp_path / "cache" and base.name.startswith("folder-") and len(base.name) == 19
    assert cache_base(DataConfig(spec="folder", reader="folder", root=str(tmp_path / "." / "xrays" / ".."
                                                                        / "xrays"))) == base  # the resolved root
    (tmp_path / "other").mkdir()
    assert cache_base(DataConfig(spec="folder", reader="folder", root=str(tmp_path / "other"))) != base
    assert cached_path("/data/a/b.png", base, 32) == f"{base}/32/data/a/b.png.png"
    assert cached_path("rel/c.dcm", base, 16) == f"{base}/16/rel/c.dcm.png"


def test_build_writes_shorter_side_resized_gray_pngs_and_a_manifest(dataset):
    cfg, paths = dataset
    result = build_cache(cfg, paths, 16)
    base = cache_base(cfg)
    assert result == {"cache_dir": str(base / "16"), "n_images": 4, "written": 4}
    for path in paths:
        cached = Image.open(cached_path(path, base, 16))
        expected = open_gray(path).resize((16, 19), Image.BILINEAR)  # 40x48: the shorter side to 16, aspect kept
        assert cached.mode == "L" and cached.size == (16, 19)
        assert np.array_equal(np.asarray(cached), np.asarray(expected))
    manifest = json.loads((base / "16" / MANIFEST).read_text())
    assert manifest == {"size": 16, "n_images": 4, "root": str((base.parent.parent / "xrays").resolve())}


def test_images_no_larger_than_the_size_read_back_exactly(dataset):
    cfg, paths = dataset
    build_cache(cfg, paths, 64)
    for path in paths:  # PNG is lossless and nothing is upscaled: the same gray pixels come back
        assert np.array_equal(_pixels(cached_path(path, cache_base(cfg), 64)), np.asarray(open_gray(path)))


def test_a_second_build_writes_only_what_is_missing(dataset):
    cfg, paths = dataset
    assert build_cache(cfg, paths[:3], 16)["written"] == 3
    first = cached_path(paths[0], cache_base(cfg), 16)
    os.utime(first, (0, 0))
    again = build_cache(cfg, paths, 16)
    assert again["written"] == 1 and again["n_images"] == 4 and os.stat(first).st_mtime == 0  # not rewritten
    assert build_cache(cfg, paths, 16, workers=1)["written"] == 0
    assert not list(cache_base(cfg).rglob("*.tmp"))


def test_loaders_use_the_smallest_complete_cache_at_least_as_large_as_the_images(dataset):
    cfg, paths = dataset
    df = pd.DataFrame({"path": paths, "label": ["a", "b", "a", "b"]})
    assert use_cache(cfg, df, 16) == (df, False)  # no cache yet
    build_cache(cfg, paths, 16)
    build_cache(cfg, paths, 32)
    base = cache_base(cfg)
    for image_size, size in ((8, 16), (16, 16), (20, 32), (32, 32)):
        swapped, used = use_cache(cfg, df, image_size)
        assert used and list(swapped["path"]) == [cached_path(p, base, size) for p in paths], image_size
        assert list(swapped["label"]) == list(df["label"]) and list(df["path"]) == paths  # a copy; df unchanged
    same, used = use_cache(cfg, df, 64)  # none large enough: the original files
    assert not used and same is df


def test_an_incomplete_cache_is_not_used(dataset):
    cfg, paths = dataset
    build_cache(cfg, paths[:2], 16)
    df = pd.DataFrame({"path": paths})
    assert use_cache(cfg, df, 16)[1] is False
    build_cache(cfg, paths, 16)
    os.unlink(cached_path(paths[3], cache_base(cfg), 16))
    assert use_cache(cfg, df, 16)[1] is False
    assert build_cache(cfg, paths, 16)["written"] == 1 and use_cache(cfg, df, 16)[1] is True
    os.unlink(cache_base(cfg) / "16" / MANIFEST)  # every image there but no manifest: not a finished cache
    assert use_cache(cfg, df, 16)[1] is False


@pytest.mark.parametrize("code, kind, exit_code", [(errno.ENOSPC, RunError, 1), (errno.EROFS, UsageError, 2)])
def test_a_failure_to_write_is_one_line_and_leaves_no_new_cache(dataset, tmp_path, monkeypatch, code, kind,
                                                                 exit_code):
    """A full disk is a failure while running (exit 1), a read-only one bad input (exit 2); the cache folder this
    build made is removed."""
    import medcolor.data.cache as cache

    cfg, paths = dataset

    def refuse(src, dst, size):
        raise OSError(code, os.strerror(code), dst)
    monkeypatch.setattr(cache, "_resize_one", refuse)
    with pytest.raises(kind) as e:
        build_cache(cfg, paths, 16)
    assert e.value.exit_code == exit_code
    message = str(e.value)
    assert message.startswith(f"cannot write the cache in {cache_base(cfg) / '16'}")
    assert f": {os.strerror(code)}; free some space or set MEDCOLOR_CACHE_DIR to a writable folder" in message
    assert not (tmp_path / "cache").exists()


def test_a_cache_folder_that_cannot_be_made_is_one_line(dataset, tmp_path, monkeypatch):
    cfg, paths = dataset
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("MEDCOLOR_CACHE_DIR", str(tmp_path / "file"))
    with pytest.raises(UsageError, match=r"^cannot write the cache in .*/file/folder-\w+/16: Not a directory; "):
        build_cache(cfg, paths, 16)


def test_an_unreadable_image_stops_the_build_but_keeps_an_earlier_cache(dataset, tmp_path):
    cfg, paths = dataset
    broken = tmp_path / "xrays" / "normal" / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(UsageError, match=rf"^cannot cache {broken}: "):
        build_cache(cfg, [*paths, str(broken)], 16)
    assert not (tmp_path / "cache").exists()  # a cache this build started is removed
    build_cache(cfg, paths, 16)
    with pytest.raises(UsageError, match="cannot cache"):
        build_cache(cfg, [*paths, str(broken)], 16)
    assert all(os.path.exists(cached_path(p, cache_base(cfg), 16)) for p in paths)  # a later build resumes it
