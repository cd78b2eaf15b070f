"""medcolor: learned colorization modules that transfer ImageNet networks to grayscale medical images.

The Python API mirrors the CLI: `load_recipe` -> `build_dls` -> `build_learner` (a fastai Learner set up
exactly as `medcolor run` trains it). Heavy libraries load on first use.
"""
__version__ = "0.1.0"

__all__ = ["load_recipe", "build_dls", "build_learner"]


def load_recipe(name_or_path, overrides=()):
    from .recipes import load_recipe as load
    return load(name_or_path, overrides)


def build_dls(recipe):
    from .learner import build_dls as build
    return build(recipe)


def build_learner(recipe, dls=None):
    from .learner import build_learner as build
    return build(recipe, dls)
