import numpy as np
import pytest
from scipy.special import expit, logit

from medcolor.tasks.calibration import (reliability_curves, assess, calibrate, check_rule, choose_thresholds, expected_calibration_error, fit,
                                  operating_points)
from medcolor.core.errors import UsageError


def test_youden_threshold_separates_a_clean_split():
    probs = np.array([[0.1], [0.2], [0.35], [0.6], [0.8]])
    targets = np.array([[0], [0], [0], [1], [1]], dtype=float)
    assert choose_thresholds(probs, targets, ["A"])["A"] == 0.6


def test_sensitivity_and_specificity_targets():
    probs = np.array([[0.1], [0.2], [0.3], [0.4], [0.5], [0.6], [0.7], [0.8]])
    targets = np.array([[0], [1], [0], [0], [1], [0], [1], [1]], dtype=float)
    assert choose_thresholds(probs, targets, ["A"], "sensitivity:1.0")["A"] == 0.2  # the highest catching all 4
    assert choose_thresholds(probs, targets, ["A"], "sensitivity:0.5")["A"] == 0.7
    assert choose_thresholds(probs, targets, ["A"], "specificity:1.0")["A"] == 0.7  # no negative at >= 0.7
    points = operating_points(probs, targets, ["A"], {"A": 0.5})["A"]
    assert points["sensitivity"] == 0.75 and points["specificity"] == 0.75


def test_ece_by_hand():
    # one image per bin: (|0 - 0.1| + |1 - 0.9| + |1 - 0.8| + |0 - 0.3|) / 4
    assert expected_calibration_error(np.array([0, 1, 1, 0.0]), np.array([0.1, 0.9, 0.8, 0.3])) == pytest.approx(0.175)


def test_temperature_undoes_overconfidence():
    rng = np.random.default_rng(0)
    true_p = rng.uniform(0.05, 0.95, (4000, 2))
    targets = (rng.random(true_p.shape) < true_p).astype(float)
    targets[:100, 1] = np.nan  # unknown labels are left out
    overconfident = expit(3 * logit(true_p))
    cal = fit(overconfident, targets, ["A", "B"], softmax_outputs=False)
    assert cal["temperature"]["A"] == pytest.approx(3, rel=0.15) and cal["temperature"]["B"] == pytest.approx(3, rel=0.15)
    assert cal["ece_valid_calibrated"]["A"] < cal["ece_valid"]["A"] / 3
    assert np.allclose(calibrate(overconfident, cal, ["A", "B"]), true_p, atol=0.05)


def test_softmax_outputs_share_one_temperature():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 1, (2000, 3))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    targets = np.eye(3)[[rng.choice(3, p=row) for row in p]]
    sharp = np.exp(4 * logits) / np.exp(4 * logits).sum(1, keepdims=True)
    cal = fit(sharp, targets, ["a", "b", "c"], softmax_outputs=True)
    assert len(set(cal["temperature"].values())) == 1 and cal["temperature"]["a"] == pytest.approx(4, rel=0.15)
    assert np.allclose(calibrate(sharp, cal, ["a", "b", "c"]).sum(1), 1)


def test_assess_reports_thresholds_only_with_a_calibration():
    probs, targets = np.array([[0.2], [0.7], [0.4], [0.9]]), np.array([[0], [1], [0], [1.0]])
    assert set(assess(probs, targets, ["A"], None)) == {"ece"}
    cal = fit(probs, targets, ["A"], False)
    out = assess(probs, targets, ["A"], cal)
    assert out["operating_points"]["A"]["sensitivity"] == 1.0 and out["threshold_rule"] == "youden"


def test_rule_checks():
    assert check_rule(None, None) == "youden" and check_rule(0.9, None) == "sensitivity:0.9"
    with pytest.raises(UsageError, match="not both"):
        check_rule(0.9, 0.8)
    with pytest.raises(UsageError, match=r"in \(0, 1\]"):
        check_rule(1.5, None)


def test_reliability_curves_count_the_images_of_each_bin():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 500)
    t = (rng.uniform(0, 1, 500) < p).astype(float)
    mean_p, rate, ece, counts = reliability_curves(p[:, None], t[:, None], ["A"])["A"]
    assert len(counts) == len(mean_p) == len(rate) and counts.sum() == 500
    edges = np.linspace(0, 1, 11)
    assert counts[0] == ((p >= edges[0]) & (p < edges[1])).sum()
