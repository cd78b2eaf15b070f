"""Every ```python block of the README runs as written (a newcomer copies them), with a smaller image size and
fewer epochs so the suite stays fast, in a folder that holds what the README's commands would have made."""
import re
import shutil
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
SMALLER = [('"train.epochs=3"', '"train.epochs=1", "train.image_size=32"'), ("fit_one_cycle(3,", "fit_one_cycle(1,"),
           ("lr_find()", "lr_find(num_it=5)")]


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_each_readme_python_block_runs(block, demo_runs, sample_dir, tmp_path, monkeypatch):
    import matplotlib
    matplotlib.use("Agg")

    runs_dir, runs = demo_runs
    (tmp_path / "runs").symlink_to(runs_dir)  # `make demo` made runs/demo/...
    (tmp_path / "new_xrays").mkdir()
    for image in sorted((sample_dir / "images").glob("*.png"))[:3]:
        shutil.copy(image, tmp_path / "new_xrays")
    monkeypatch.chdir(tmp_path)
    for old, new in SMALLER:
        block = block.replace(old, new)
    exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
    assert not (tmp_path / "models").exists()  # fastai's lr_find leaves no folder behind
