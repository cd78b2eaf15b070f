import subprocess
import sys

import numpy as np

from medcolor.core.plots import plot_roc

KEEPS_BACKEND = """
import matplotlib
matplotlib.use("svg")
import medcolor
from medcolor.core import plots
medcolor.build_dls(medcolor.load_recipe("demo", ["train.image_size=32", "data.subset.fraction=0.1"]))
print(matplotlib.get_backend())
"""


def test_importing_and_using_medcolor_leaves_the_users_backend_alone():
    """A notebook's inline backend must survive `import medcolor` and building data (it used to switch to Agg)."""
    out = subprocess.run([sys.executable, "-c", KEEPS_BACKEND], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "svg"


def test_a_figure_is_written_whole_and_closed(tmp_path):
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    t = rng.integers(0, 2, 50)
    open_before = set(plt.get_fignums())
    plot_roc(tmp_path / "roc.png", {"Edema": (t, t * 0.5 + rng.random(50) * 0.5)}, title="run x: ROC on test")
    assert (tmp_path / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and set(plt.get_fignums()) == open_before


def test_grad_cam_figures_carry_a_colour_bar_that_says_what_red_means(monkeypatch, tmp_path):
    import medcolor.core.plots as plots

    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figures.append(fig))
    images, cams = np.random.default_rng(0).random((2, 16, 16)), {"Edema": np.linspace(0, 1, 512).reshape(2, 16, 16)}
    plots.plot_gradcam(tmp_path / "g.png", images, None, cams, ["a.png", "b.png"], title="run x")
    bars = [ax for ax in figures[0].axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1 and "Grad-CAM" in bars[0].get_ylabel()
