"""`medcolor report --html`: one self-contained page, checked as text and in a real browser (Debian's chromium,
headless; the browser checks are skipped without it)."""
import re
import shutil
import subprocess

import pytest

from medcolor.cli import main
from medcolor.results.html_report import gradcam_png, report_with_page

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install "
                                                             "chromium): the page is not rendered in a browser")
LABELS = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Any finding"]


@pytest.fixture(scope="module")
def two_rows(demo_runs, tmp_path_factory):
    """The three demo runs (row 1, mode 1) and copies of them that say they trained in mode 2 (the same network,
    so best.pth still fits), with noisier probabilities (row 2)."""
    import numpy as np
    import pandas as pd
    import yaml

    folder = tmp_path_factory.mktemp("two-rows")
    for run in demo_runs[1]:
        shutil.copytree(run, folder / "demo" / run.name, ignore=shutil.ignore_patterns("last.pth"))
        copy = folder / "demo" / f"{run.name}-mode2"
        shutil.copytree(run, copy, ignore=shutil.ignore_patterns("last.pth"))
        r = yaml.safe_load((copy / "recipe.yaml").read_text())
        r["model"]["mode"] = 2
        (copy / "recipe.yaml").write_text(yaml.safe_dump(r))
        preds = pd.read_csv(copy / "predictions.csv")
        noise = np.random.default_rng(0).random((len(preds), len(LABELS)))
        preds[[f"p_{lab}" for lab in LABELS]] = (preds[[f"p_{lab}" for lab in LABELS]] + noise) / 2
        preds.to_csv(copy / "predictions.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def page(two_rows, tmp_path_factory):
    text, path = report_with_page([two_rows], tmp_path_factory.mktemp("page") / "report.html", vs="mode=1",
                                  vs_plot="")
    return text, path, path.read_text()


def body_rows(html: str) -> list[str]:
    return re.findall(r"<tr[ >].*?</tr>", re.search(r"<tbody>(.*)</tbody>", html, re.S).group(1), re.S)


def test_the_page_is_one_self_contained_file(page):
    text, path, html = page
    assert path.name == "report.html" and text.startswith("| row | recipe |")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)  # nothing from the network
    assert "<link" not in html and "<script src" not in html
    images = re.findall(r'<img [^>]*src="([^"]{0,40})', html)
    assert len(images) >= 4 and all(src.startswith("data:image/png;base64,") for src in images)
    for section in ("table", "roc", "reliability", "colorizer", "gradcam", "versus", "cards"):
        assert f'<section id="{section}">' in html


def test_the_page_says_what_it_shows_and_has_a_row_per_report_row(page, two_rows):
    _, _, html = page
    title = re.search(r"<title>(.*)</title>", html).group(1)
    assert title.startswith("medcolor report: demo (seeds 0, 1, 2; test split; ")
    assert str(two_rows) in html and "nih-sample" in html
    rows = body_rows(html)
    assert len(rows) == 2 and "mode 1" in rows[0] and "mode 2" in rows[1] and "vs row 1" in rows[1]
    assert len(re.findall(r'<details id="card-\d-\d">', html)) == 6 and rows[0].count('class="card"') == 3
    assert html.count("<pre># Model card: demo (seed ") == 6  # every run's card, embedded


def test_a_failure_leaves_no_page(two_rows, tmp_path, monkeypatch):
    import medcolor.results.html_report as html_report

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(html_report, "build_page", broken)
    with pytest.raises(RuntimeError):
        report_with_page([two_rows], tmp_path / "r.html")
    assert list(tmp_path.iterdir()) == []


def test_grad_cam_already_in_the_run_folder_is_reused(demo_runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(demo_runs[1][0], run, ignore=shutil.ignore_patterns("*.pth"))
    (run / "interpret-test").mkdir()
    (run / "interpret-test" / "gradcam_gallery.png").write_bytes(b"\x89PNG made by interpret")
    png, source = gradcam_png(run)
    assert png == b"\x89PNG made by interpret" and "interpret-test" in source


def test_command_line_writes_the_page_next_to_an_existing_one(two_rows, tmp_path, capsys, monkeypatch):
    import medcolor.results.html_report as html_report

    monkeypatch.setattr(html_report, "gradcam_png", lambda run: (b"\x89PNG", "a stand-in"))  # the page's is tested
    path = tmp_path / "r.html"
    path.write_text("an older page")
    assert main(["report", str(two_rows), "--html", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("| recipe |") and path.read_text() == "an older page"
    written = tmp_path / "r-2.html"
    assert f"wrote {written}" in err and len(body_rows(written.read_text())) == 2


@pytest.mark.parametrize("where", ["missing/r.html", "."])
def test_a_bad_page_path_is_one_line_and_writes_nothing(demo_runs, tmp_path, capsys, where):
    page = tmp_path / where
    assert main(["report", str(demo_runs[0]), "--html", str(page)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --html ") and str(page) in err[0]
    assert list(tmp_path.iterdir()) == []


def chromium(*args, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path}",
                           *args], capture_output=True, text=True, timeout=60)


@needs_chromium
def test_a_browser_renders_the_table_and_the_images(page, tmp_path):
    _, path, _ = page
    shot = tmp_path / "page.png"
    chromium(f"--screenshot={shot}", "--window-size=1280,2400", path.as_uri(), tmp_path=tmp_path / "profile")
    assert shot.is_file() and shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 20_000
    dom = chromium("--dump-dom", path.as_uri(), tmp_path=tmp_path / "profile").stdout
    assert len(body_rows(dom)) == 2 and dom.count("<img") >= 4


@needs_chromium
def test_a_click_on_a_header_sorts_the_rows(page, tmp_path):
    _, _, html = page
    clicked = tmp_path / "clicked.html"
    clicks = '<script>var th = document.querySelector("th"); th.click(); th.click();</script>'
    clicked.write_text(html.replace("</body>", clicks + "</body>"))
    dom = chromium("--dump-dom", clicked.as_uri(), tmp_path=tmp_path / "profile").stdout
    first_cells = [re.search(r"<td>(.*?)</td>", row).group(1) for row in body_rows(dom)]
    assert first_cells == ["2", "1"] and 'data-order="desc"' in dom
