"""`medcolor report FOLDER... --html PAGE.html`: the report as one self-contained page - the table (a click on a
header sorts it), the rows' ROC curves overlaid, their reliability diagrams, the colorizer gallery and Grad-CAM of
the best row, the paired comparisons of --vs, and every run's model card. Figures are embedded as base64 data URIs
and the few lines of script are inline: the page opens offline, from any folder, with nothing beside it."""
from __future__ import annotations

import base64
import html
import os
import re
import string
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..core import runfolder
from ..core.archs import gray_replicated, uses_colorizer
from ..core._resources import medcolor_version
from ..core.errors import UsageError
from ..core.io import atomic_write, claim_new, info, removed_on_failure, warn
from .report import (GROUP, auc_vs_size, averaged_predictions, check_format, metric_columns, parse_selector,
                     plot_versus, report_table, report_text, table_cells, table_notes)

GRADCAM_IMAGES = 3
FPR_GRID = np.linspace(0, 1, 201)


def report_with_page(paths, page, fmt: str = "markdown", plot: str | None = runfolder.AUC_VS_SIZE_PLOT, vs: str | None = None,
                     vs_plot: str | None = runfolder.AUC_VS_REFERENCE_PLOT, per_label: bool = True) -> tuple[str, Path]:
    """(the report's text as `report.report` returns it, the page written). The page's file is claimed before the
    slow work, so a bad path costs nothing; like the report's plots it never overwrites (page-2.html, ...), and it
    is removed again when anything fails: no half-written page is left."""
    check_format(fmt)
    parse_selector(vs or "1")
    with removed_on_failure(claim_page(page)) as path:
        df, table = report_table(paths, plot, vs, vs_plot, per_label)
        atomic_write(path, build_page(paths, df, table, vs))
    info(f"wrote {path}")
    return report_text(df, table, fmt, vs), path


def claim_page(page) -> Path:
    """A new, empty file for the page: PAGE, or PAGE-2 ... when it exists; a bad folder is one line."""
    page = Path(page)
    if page.is_dir():
        raise UsageError(f"--html {page} is a folder; name the page's file, e.g. {page / 'report.html'}")
    if not page.parent.is_dir():
        raise UsageError(f"--html {page}: folder {page.parent} does not exist; create it first")
    if not os.access(page.parent, os.W_OK):
        raise UsageError(f"--html {page}: folder {page.parent} is not writable")
    return claim_new(page)


# ---- the page ------------------------------------------------------------------------------------------------

def build_page(paths, df: pd.DataFrame, table: pd.DataFrame, vs: str | None = None) -> str:
    """The whole page as one string: heading, table, figures, model cards."""
    groups = [g for _, g in df.groupby(GROUP, dropna=False, sort=True)]  # the table's row order (report.aggregate)
    names = [row_name(table.loc[k]) for k in range(len(table))]
    best = best_row(table)
    predictions = row_predictions(groups) if best is not None else [None] * len(table)
    sections = [table_section(df, table, vs, groups, best),
                roc_section(predictions, names, table),
                reliability_section(predictions, names),
                gallery_section(table, groups, names, best),
                gradcam_section(groups, names, best),
                versus_section(table) if vs else "",
                size_section(table),
                cards_section(groups, names)]
    title, meta = describe(paths, df, table)
    sections = [s for s in sections if s]
    return PAGE.substitute(title=html.escape(title), meta=meta, style=STYLE, script=SCRIPT, nav=navigation(sections),
                           body="\n".join(sections))


def navigation(sections: list[str]) -> str:
    """Links to the page's sections, read from their anchors and headings."""
    found = [re.match(r'<section id="([^"]+)">\n<h2>([^<]+)</h2>', s).groups() for s in sections]
    return "<nav>" + " ".join(f'<a href="#{anchor}">{heading}</a>' for anchor, heading in found) + "</nav>"


def describe(paths, df: pd.DataFrame, table: pd.DataFrame) -> tuple[str, str]:
    """(the page's title, its heading's lines): folders, recipes, seeds, split, data, date."""
    recipes = ", ".join(dict.fromkeys(table["recipe"]))
    seeds = ", ".join(map(str, sorted(set(df["seed"]))))
    splits = " and ".join(sorted(set(table["split"])))
    when = time.strftime("%Y-%m-%d %H:%M")
    data = ", ".join(dict.fromkeys(d.rstrip(":") for d in table["data"]))
    facts = {"folders": ", ".join(map(str, paths)), "recipes": recipes,
             "rows": f"{len(table)} ({len(df)} runs; a row's seeds are averaged)", "seeds": seeds,
             "scored on": f"the {splits} split", "data": data, "written": f"{when} by medcolor {medcolor_version()}"}
    meta = "\n".join(f"<div><dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd></div>" for k, v in facts.items())
    return f"medcolor report: {recipes} (seeds {seeds}; {splits} split; {when})", meta


def row_name(r) -> str:
    """A row as the figures' legends name it: its number, recipe, colorizer (or architecture) and mode."""
    model = f"{r['colorizer']} | mode {r['mode']}" if uses_colorizer(r["arch"]) else r["arch"]
    return f"row {r.name + 1}: {r['recipe']} | {model}"


def best_row(table: pd.DataFrame) -> int | None:
    """The row with the highest mean AUC; None when no row has one (reconstructions)."""
    if "mean_mean" not in table or table["mean_mean"].isna().all():
        return None
    return int(table["mean_mean"].idxmax())


def row_predictions(groups: list[pd.DataFrame]) -> list:
    """Per row, (labels, its runs' mean predictions) or None where its runs have none."""
    out = []
    for g in groups:
        try:
            out.append(averaged_predictions(list(g["run_dir"])))
        except UsageError:
            out.append(None)
    return out


def section(anchor: str, heading: str, *parts: str) -> str:
    return f'<section id="{anchor}">\n<h2>{html.escape(heading)}</h2>\n' + "\n".join(parts) + "\n</section>"


def paragraph(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"


def image(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def figure(png: bytes, caption: str) -> str:
    return f"<figure>{image(png, caption)}<figcaption>{html.escape(caption)}</figcaption></figure>"


def side_by_side(parts: list[str]) -> str:
    return '<div class="figures">' + "".join(parts) + "</div>"


def drawn(draw) -> bytes:
    """The PNG a plotting function writes (plots.py writes files), read back from a temporary folder."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "figure.png"
        draw(path)
        return path.read_bytes()


# ---- the table -------------------------------------------------------------------------------------------------

def table_section(df: pd.DataFrame, table: pd.DataFrame, vs: str | None, groups: list, best: int | None) -> str:
    head, rows = table_cells(table, metric_columns(df))
    if not vs:  # --vs numbers the rows already
        head, rows = ["row"] + head, [[str(k + 1)] + cells for k, cells in enumerate(rows)]
    head = head + ["model cards"]
    header = "".join(f'<th title="click to sort">{html.escape(h)}</th>' for h in head)
    body = "\n".join(f"<tr{' class=best' if k == best else ''}>" + "".join(f"<td>{breakable(c)}</td>" for c in cells)
                     + f"<td>{card_links(k, groups[k])}</td></tr>" for k, cells in enumerate(rows))
    notes = table_notes(table, vs) + [
        "Each row groups the runs that differ only by their seed: a score is the mean ± sample std over them. Click "
        "a column's header to sort the rows by it (again: the other way)."] + \
        ([f"Bold: row {best + 1}, the highest mean AUC; the colorizer gallery and Grad-CAM below are of its runs."]
         if best is not None else [])
    table_html = f'<table class="sortable"><thead><tr>{header}</tr></thead>\n<tbody>\n{body}\n</tbody></table>'
    return section("table", "Report table", f'<div class="wide">{table_html}</div>', *map(paragraph, notes))


def breakable(cell: str) -> str:
    """A cell's text, escaped, that may wrap after '_', ':' and ',' too: long names (starting points, data
    sources) wrap there instead of widening the table; numbers keep whole."""
    return re.sub(r"([_:,])(?=\S)", r"\1<wbr>", html.escape(cell))


def card_links(k: int, group: pd.DataFrame) -> str:
    return " ".join(f'<a class="card" href="#card-{k + 1}-{j + 1}">seed {seed}</a>'
                    for j, seed in enumerate(group["seed"]))


# ---- figures ---------------------------------------------------------------------------------------------------

def roc_section(predictions: list, names: list[str], table: pd.DataFrame) -> str:
    curves = {name: macro_roc(*p) for name, p in zip(names, predictions) if p is not None}
    curves = {name: c for name, c in curves.items() if c is not None}
    if not curves:
        return section("roc", "ROC curves", paragraph("No ROC curves: these runs have no class predictions."))
    from ..core.plots import plot_roc_rows

    split = " and ".join(sorted(set(table["split"])))
    png = drawn(lambda path: plot_roc_rows(path, curves, title=f"ROC per report row ({split} split): mean over "
                                                                 f"labels of the mean prediction of the row's runs"))
    left_out = [name for name in names if name not in curves]
    notes = [f"Not drawn (no class predictions on the same images): {'; '.join(left_out)}."] if left_out else []
    return section("roc", "ROC curves", figure(png, "One curve per row of the table"),
                   *map(paragraph, notes + [ROC_DRAWN]))


ROC_DRAWN = ("Per row: the runs' predicted probabilities are averaged image by image (over the row's seeds), each "
             "label's ROC curve is computed on them, and the curves are averaged over the labels at the same false "
             "positive rates (the macro-average ROC). The legend gives the mean over labels of those AUCs - the AUC "
             "of the mean prediction, which --vs reports too; the table's AUC column is instead the mean of the "
             "runs' own AUCs.")


def macro_roc(labels: list[str], frame: pd.DataFrame):
    """(false positive rates, mean true positive rate over labels, mean AUC over labels) of one row's mean
    predictions; labels with a single class among their known targets are left out. None when none is left."""
    from sklearn.metrics import roc_auc_score, roc_curve

    from ..tasks.metrics import per_label

    probs, targets = frame[runfolder.prob_columns(labels)].to_numpy(float), frame[labels].to_numpy(float)
    tprs, aucs = [], []
    for _, _, t, p in per_label(probs, targets, labels):
        fpr, tpr, _ = roc_curve(t, p)
        tprs.append(np.interp(FPR_GRID, fpr, tpr))
        aucs.append(roc_auc_score(t, p))
    if not tprs:
        return None
    mean_tpr = np.mean(tprs, axis=0)
    mean_tpr[0] = 0.0
    return FPR_GRID, mean_tpr, float(np.mean(aucs))


def reliability_section(predictions: list, names: list[str]) -> str:
    panels = {name: pooled_reliability(*p) for name, p in zip(names, predictions) if p is not None}
    if not panels:
        return ""
    from ..core.plots import plot_reliability_panels

    png = drawn(lambda path: plot_reliability_panels(
        path, panels, title="reliability per report row: every label's raw probabilities of the row's mean "
                            "prediction, pooled, in 10 equal-width bins (dashed: perfect calibration)"))
    return section("reliability", "Reliability diagrams", figure(png, "One diagram per row of the table"), paragraph(
        "How often a finding is present (observed rate) against the probability predicted for it. Raw "
        "probabilities, before the runs' temperature scaling (calibration.json); each point is a bin, the number "
        "beside it the label-image pairs it holds; ECE: expected calibration error, the count-weighted mean gap."))


def pooled_reliability(labels: list[str], frame: pd.DataFrame):
    """(mean probability, observed rate, ECE, pairs) per non-empty bin over every (image, label) pair."""
    from ..tasks.calibration import reliability_curves

    probs = frame[runfolder.prob_columns(labels)].to_numpy(float).reshape(-1, 1)
    targets = frame[labels].to_numpy(float).reshape(-1, 1)
    return reliability_curves(probs, targets, ["all labels"])["all labels"]


def gallery_section(table: pd.DataFrame, groups: list, names: list[str], best: int | None) -> str:
    """The colorizer figure of the best row's first run, and of the best row with a colorizer when that differs."""
    if best is None:
        return ""
    parts = []
    for k in gallery_rows(table, best):
        run = Path(groups[k]["run_dir"].iloc[0])
        png = runfolder.plot_path(run, runfolder.COLORIZER_PLOT)
        what = f"{names[k]}, run {run.name}" + (" (the best row)" if k == best else " (the best row with a "
                                                                                          "colorizer)")
        parts.append(figure(png.read_bytes(), what) if png.is_file() else paragraph(f"{what}: no {png}"))
    return section("colorizer", "Colorizer gallery", side_by_side(parts), paragraph(
        "Validation images as the network reads them (input), each output channel of the colorizer and their RGB "
        "composite, from the run folder's plots/."))


def gallery_rows(table: pd.DataFrame, best: int) -> list[int]:
    colorized = table.loc[[uses_colorizer(a) and isinstance(c, str) and not gray_replicated(c)
                           for a, c in zip(table["arch"], table["colorizer"])], "mean_mean"]
    best_colorized = None if colorized.isna().all() else int(colorized.idxmax())
    return [best] + ([best_colorized] if best_colorized not in (None, best) else [])


def gradcam_section(groups: list, names: list[str], best: int | None) -> str:
    if best is None:
        return ""
    run = Path(groups[best]["run_dir"].iloc[0])
    try:
        png, source = gradcam_png(run)
    except Exception as e:  # the images moved, the weights are unreadable, a damaged file: the page goes on
        warn(f"no Grad-CAM on the page: {e}")
        return section("gradcam", "Grad-CAM", paragraph(f"No Grad-CAM for {run}: {e}"))
    if png is None:
        return section("gradcam", "Grad-CAM", paragraph(f"No Grad-CAM for {run}: {source}"))
    return section("gradcam", "Grad-CAM", figure(png, f"{names[best]} (the best row), run {run.name}: {source}"),
                   paragraph("Per image: the input, the colorizer's output where the model has a colorizer, and, per "
                             "label, where the evidence for that label is strongest (red)."))


def gradcam_png(run: Path) -> tuple[bytes | None, str]:
    """(PNG, what it shows) of Grad-CAM for a run: the newest one `medcolor interpret` left in the run folder, else
    one made here on a few of its test images (nothing is written into the run folder)."""
    kept = sorted(run.glob(f"{runfolder.INTERPRET_PREFIX}*/{runfolder.GRADCAM_GALLERY}"),
                  key=lambda p: p.stat().st_mtime)
    if kept:
        return kept[-1].read_bytes(), f"made by medcolor interpret ({kept[-1].relative_to(run)})"
    from .interpret import gradcam_figures
    from ..training.runs import load_model, model_title

    labels, frame = runfolder.read_predictions(run)
    paths, which = confident_findings(frame, labels, GRADCAM_IMAGES)
    spec, learn = load_model(run)
    outputs = [list(spec.labels).index(lab) for lab in labels]
    with tempfile.TemporaryDirectory() as folder:
        written, _ = gradcam_figures(learn, Path(folder), [("gradcam.png", which, paths)], labels, outputs,
                                     model_title(run))
        if not written:
            return None, "the model exposes no backbone feature map"
        return (Path(folder) / "gradcam.png").read_bytes(), which


def confident_findings(frame: pd.DataFrame, labels: list[str], n: int) -> tuple[list[str], str]:
    """(paths, what they are): the n images whose highest probability of a finding they have is highest."""
    targets, probs = frame[labels].to_numpy(float), frame[runfolder.prob_columns(labels)].to_numpy(float)
    score = np.where(targets == 1, probs, -1.0).max(axis=1)
    top = np.argsort(-score, kind="stable")[:n]
    split = frame["split"].iloc[0] if "split" in frame and len(frame) else "evaluated"
    return list(frame["path"].iloc[top]), \
        f"the {len(top)} {split} images given the highest probability of a finding they have"


def versus_section(table: pd.DataFrame) -> str:
    png = drawn(lambda path: plot_versus(table, path))
    return section("versus", "Paired comparisons (--vs)", figure(png, "Mean AUC of each row's seed-averaged "
                                                                      "predictions with its bootstrap 95% CI"),
                   paragraph("The table's last two columns hold each row's paired difference to its reference row "
                             "on the same images: bootstrap 95% CI and p, Holm-corrected across the rows (*: below "
                             "0.05)."))


def size_section(table: pd.DataFrame) -> str:
    if table["subset_fraction"].nunique() < 2 or "mean_mean" not in table:
        return ""
    png = drawn(lambda path: auc_vs_size(table, path))
    return section("size", "AUC vs training-set size", figure(png, "mean ± std AUC over seeds per training-set "
                                                                   "size"))


# ---- model cards -----------------------------------------------------------------------------------------------

def cards_section(groups: list, names: list[str]) -> str:
    cards = [card(k, j, Path(run), seed, names[k]) for k, g in enumerate(groups)
             for j, (run, seed) in enumerate(zip(g["run_dir"], g["seed"]))]
    return section("cards", "Model cards", paragraph("Every run's model_card.md, embedded (click to open); the link "
                                                     "under each opens the file itself when the runs are at hand."),
                   *cards)


def card(k: int, j: int, run: Path, seed, name: str) -> str:
    path = run / runfolder.CARD
    text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else f"(no {runfolder.CARD})"
    return (f'<details id="card-{k + 1}-{j + 1}"><summary>{html.escape(name)}, seed {seed}: '
            f"{html.escape(run.name)}</summary>\n<pre>{html.escape(text)}</pre>\n"
            f'<p><a href="{html.escape(path.resolve().as_uri())}">{html.escape(str(path))}</a></p></details>')


STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: .3em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 0 1em; margin: 0; }
dl.meta div { display: contents; } dt { font-weight: 600; color: #555; } dd { margin: 0; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; font-size: 12px; }
th, td { border: 1px solid #ccc; padding: 3px 4px; text-align: left; vertical-align: top; }
div.wide { overflow-x: auto; }
th { background: #f0f0f0; cursor: pointer; user-select: none; }
th[data-order="asc"]::after { content: " \\25B2"; } th[data-order="desc"]::after { content: " \\25BC"; }
tr.best td { font-weight: 600; background: #fffbe6; }
figure { margin: 1em 0; } figure img { max-width: 100%; }
div.figures { display: flex; gap: 2em; align-items: flex-end; } div.figures figure { min-width: 0; }
figcaption { color: #555; font-size: 12.5px; }
details { margin: .3em 0; } summary { cursor: pointer; }
pre { white-space: pre-wrap; background: #f7f7f7; padding: .8em; font-size: 12px; }
"""

SCRIPT = """
document.querySelectorAll("table.sortable th").forEach(function (th, column) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0], up = th.dataset.order !== "asc";
    th.parentNode.querySelectorAll("th").forEach(function (h) { delete h.dataset.order; });
    th.dataset.order = up ? "asc" : "desc";
    function key(tr) { var t = tr.cells[column].textContent.trim(), x = parseFloat(t); return isNaN(x) ? t : x; }
    Array.from(body.rows).sort(function (a, b) {
      var x = key(a), y = key(b);
      var c = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1);
      return up ? c : -c;
    }).forEach(function (tr) { body.appendChild(tr); });
  });
});
document.querySelectorAll("a.card").forEach(function (a) {
  a.addEventListener("click", function () { document.getElementById(a.hash.slice(1)).open = true; });
});
"""

PAGE = string.Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>$title</title>
<style>$style</style>
</head>
<body>
<h1>$title</h1>
<dl class="meta">
$meta
</dl>
$nav
$body
<p><small>One self-contained file: the figures are embedded in it and nothing is loaded from the network.</small></p>
<script>$script</script>
</body>
</html>
""")
