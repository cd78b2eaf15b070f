from types import SimpleNamespace

import torch

from medcolor.training.callbacks import FMix, PlainTensors, fmix_mask


def test_fmix_mixes_inputs_and_targets_by_the_mask_area():
    torch.manual_seed(0)
    x, y = torch.rand(6, 1, 32, 32), torch.eye(6)[:, :4]
    cb = FMix()
    cb.learn = SimpleNamespace(xb=(x,), yb=(y,))
    cb.before_batch()
    m, perm, area = cb.mask, cb.perm, cb.area
    assert set(m.unique().tolist()) <= {0.0, 1.0} and 0 < area < 1
    assert torch.allclose(cb.learn.xb[0], m * x + (1 - m) * x[perm])
    assert torch.allclose(cb.learn.yb[0], area * y + (1 - area) * y[perm])


def test_fmix_mask_has_the_requested_area():
    for lam in (0.1, 0.5, 0.9):
        assert abs(float(fmix_mask(lam, (40, 40)).mean()) - lam) < 1e-3


def test_plain_tensors_strip_fastai_types_from_the_batch():
    from fastai.torch_core import TensorImage, TensorMultiCategory

    learn = SimpleNamespace(xb=(TensorImage(torch.rand(2, 1, 4, 4)),), yb=(TensorMultiCategory(torch.ones(2, 3)),))
    cb = PlainTensors()
    cb.learn = learn
    cb.before_batch()
    assert type(learn.xb[0]) is torch.Tensor and type(learn.yb[0]) is torch.Tensor
    assert learn.xb[0].shape == (2, 1, 4, 4) and learn.yb[0].sum() == 6


def test_the_best_epochs_validation_predictions_spare_finalize_a_pass(tmp_path):
    """BestValidPredictions keeps the validation pass that scored best.pth; it equals predicting the split again."""
    import numpy as np

    from medcolor.tasks.classification import predict_split
    from medcolor.training.learner import build_data, build_learner
    from medcolor.training.recipes import load_recipe
    from medcolor.training.train import fit

    recipe = load_recipe("demo", ["train.epochs=1", "train.image_size=32"])
    dls, table = build_data(recipe)
    learn = build_learner(recipe, dls)
    probs, targets = fit(learn, recipe, tmp_path, quiet=True).valid_preds
    again, targets_again, rows = predict_split(learn, table, "valid")
    assert probs.shape == again.shape == (len(rows), 6)
    assert np.allclose(probs, again, atol=1e-5) and np.array_equal(targets, targets_again)


def test_a_nan_loss_is_blamed_on_the_learning_rate_only_when_the_batch_was_finite():
    import pytest
    from fastai.callback.core import CancelFitException

    from medcolor.training.callbacks import StopOnNaN

    nan, finite = torch.tensor(float("nan")), torch.zeros(2, 1, 4, 4)
    cases = [((finite,), (torch.zeros(2, 3),), True, "the weights diverged"),
             ((finite,), (torch.tensor([[float("nan"), 1.0, 0.0]] * 2),), True, "the weights diverged"),  # masked
             ((finite / 0 * 0,), (torch.zeros(2, 3),), False, "non-finite images"),
             ((finite,), (torch.full((2, 3), float("inf")),), False, "infinite targets")]
    for xb, yb, diverged, cause in cases:
        stop = StopOnNaN()
        stop.learn = SimpleNamespace(training=True, loss=nan, xb=xb, yb=yb, epoch=3)
        with pytest.raises(CancelFitException):
            stop.after_batch()
        assert (stop.nan_epoch, stop.diverged) == (3, diverged) and cause in stop.cause
