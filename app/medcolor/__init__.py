"""medcolor: learned colorization modules that transfer ImageNet networks to grayscale medical images.

The Python API mirrors the CLI: `load_recipe` -> `build_dls` -> `build_learner` (a fastai Learner set up
exactly as `medcolor run` trains it), and `load_model(run_dir)` for a finished run (its ModelSpec and a Learner
with its best weights whose `dls.test_dl(rows)` preprocesses images as validation did; no training data read).
Heavy libraries load on first use.
"""
from .core._resources import medcolor_version

__version__ = medcolor_version()

__all__ = ["load_recipe", "build_dls", "build_learner", "load_model"]


def load_recipe(name_or_path, overrides=()):
    from .training.recipes import load_recipe as load
    return load(name_or_path, overrides)


def build_dls(recipe):
    from .training.learner import build_dls as build
    return build(recipe)


def build_learner(recipe, dls=None):
    from .training.learner import build_learner as build
    return build(recipe, dls)


def load_model(run_dir):
    from .training.runs import load_model as load
    return load(run_dir)
