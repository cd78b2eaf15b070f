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


def test_the_readme_is_at_most_200_lines():
    """A newcomer's page: the reference lives in docs/ (issue 34)."""
    lines = README.read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move reference material into docs/"


def _relative_links(text):
    """Targets of markdown links `[text](target)` outside code, less web, mail and in-page (#...) ones."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)   # fenced code blocks
    text = re.sub(r"`[^`\n]*`", "", text)                # inline code
    for target in re.findall(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text):
        if not target.startswith(("http://", "https://", "#", "mailto:")):
            yield target


def test_every_relative_link_in_the_readme_and_docs_points_to_a_file():
    root = README.parent
    pages = [README, *sorted((root / "docs").glob("*.md"))]
    broken = [f"{page.relative_to(root)}: {target}" for page in pages for target in _relative_links(page.read_text())
              if not (page.parent / target.split("#")[0]).exists()]
    assert len(pages) > 5 and not broken, broken
