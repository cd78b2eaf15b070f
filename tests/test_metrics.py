"""metrics.py against scikit-learn and hand-computed cases."""
import numpy as np
import pytest
from sklearn.metrics import accuracy_score

from medcolor.tasks.metrics import accuracy


def test_acc_of_one_class_per_image_is_sklearn_accuracy_of_the_arg_max():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=50)
    classes = rng.integers(0, 4, 50)
    targets = np.eye(4)[classes]
    assert accuracy(probs, targets, list("abcd"), single_label=True) == accuracy_score(classes, probs.argmax(1))


def test_acc_of_independent_labels_is_the_mean_over_labels_at_half_with_unknown_targets_left_out():
    probs = np.array([[0.9, 0.2], [0.4, 0.7], [0.6, 0.1], [0.2, 0.8]])
    targets = np.array([[1, 0], [0, 1], [0, np.nan], [0, 0]], dtype=float)
    # label a: 1/1, 0/0, 1/0 wrong, 0/0 -> 3/4; label b (third unknown): 0/0, 1/1, 1/0 wrong -> 2/3
    assert accuracy(probs, targets, ["a", "b"], single_label=False) == pytest.approx((3 / 4 + 2 / 3) / 2)
    by_sklearn = [accuracy_score(targets[:, 0], probs[:, 0] > 0.5),
                  accuracy_score(targets[[0, 1, 3], 1], probs[[0, 1, 3], 1] > 0.5)]
    assert accuracy(probs, targets, ["a", "b"], single_label=False) == pytest.approx(np.mean(by_sklearn))


def test_binary_acc_at_half_equals_the_arg_max_of_two_softmax_columns():
    p1 = np.array([0.1, 0.6, 0.51, 0.3, 0.9])
    y = np.array([0, 1, 0, 0, 1])
    probs, targets = np.stack([1 - p1, p1], 1), np.eye(2)[y]
    assert accuracy(probs, targets, ["neg", "pos"], single_label=True) == accuracy_score(y, p1 > 0.5) == 0.8
