import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from medcolor.tasks.stats import (bootstrap_aucs, bootstrap_p, ci95, counted_aucs, delong, holm, paired_comparison,
                            rank_aucs, resample_counts)


def test_rank_aucs_equal_scikit_learn_with_ties_and_unknown_targets():
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 2, (60, 3)).astype(float)
    targets[rng.random((60, 3)) < 0.2] = np.nan
    probs = np.round(rng.random((60, 3)), 1)  # many ties
    for j in range(3):
        known = ~np.isnan(targets[:, j])
        assert rank_aucs(probs, targets)[j] == pytest.approx(roc_auc_score(targets[known, j], probs[known, j]))


def test_rank_auc_of_a_one_class_label_is_nan():
    assert np.isnan(rank_aucs(np.array([[0.2], [0.4]]), np.array([[1.0], [1.0]]))[0])


def test_delong_matches_a_worked_example():
    # Positives score (0.9, 0.6, 0.4) under A and (0.8, 0.3, 0.2) under B; negatives (0.5, 0.2) and (0.6, 0.1).
    # Placement values: A's positives beat (1, 1, 1/2) of the negatives, B's (1, 1/2, 1/2): AUC 5/6 and 2/3.
    # Negatives are beaten by (2/3, 1) of A's positives and (1/3, 1) of B's.
    # S10 = cov of the positives' placements = [[1/12, 1/24], [1/24, 1/12]], S01 = [[1/18, 1/9], [1/9, 2/9]],
    # S = S10 / 3 + S01 / 2 = [[1/18, 5/72], [5/72, 5/36]], var(A - B) = 1/18 + 5/36 - 10/72 = 1/18,
    # z = (1/6) / sqrt(1/18) = 1/sqrt(2).
    t = np.array([1, 1, 1, 0, 0])
    r = delong(t, np.array([0.9, 0.6, 0.4, 0.5, 0.2]), np.array([0.8, 0.3, 0.2, 0.6, 0.1]))
    assert r["auc_a"] == pytest.approx(5 / 6) and r["auc_b"] == pytest.approx(2 / 3)
    assert r["var"] == pytest.approx(1 / 18)
    assert r["p"] == pytest.approx(2 * norm.sf(1 / np.sqrt(2))) and r["p"] == pytest.approx(0.4795, abs=1e-4)


def test_delong_variance_agrees_with_the_bootstrap():
    rng = np.random.default_rng(1)
    t = rng.integers(0, 2, 400)
    a = t + rng.normal(0, 1.0, 400)
    b = 0.5 * a + 0.5 * (t + rng.normal(0, 1.2, 400))
    test = delong(t, a, b)
    boot = bootstrap_aucs(t[:, None].astype(float), [a[:, None], b[:, None]], np.arange(400), 2000, seed=3)
    assert np.std(boot[:, 0, 0] - boot[:, 1, 0]) == pytest.approx(np.sqrt(test["var"]), rel=0.15)


def test_identical_predictions_differ_by_nothing():
    t = np.array([0, 1, 0, 1, 1.0])
    p = np.array([0.1, 0.7, 0.4, 0.6, 0.9])
    assert delong(t, p, p)["p"] == 1.0
    r = paired_comparison(t[:, None], p[:, None], p[:, None], ["A"], np.arange(5), n_boot=200)
    assert r["mean"]["diff"] == 0 and r["mean"]["ci95"] == [0.0, 0.0]


def test_resamples_draw_whole_groups():
    groups = np.array(["p1", "p1", "p1", "p2", "p3", "p3"])
    counts = np.concatenate(list(resample_counts(groups, n_boot=50, seed=0)))
    assert counts.shape == (50, 6)
    assert (counts[:, 0] == counts[:, 1]).all() and (counts[:, 1] == counts[:, 2]).all()
    assert (counts[:, 4] == counts[:, 5]).all() and (counts[:, [0, 3, 4]].sum(1) == 3).all()  # three groups drawn


def test_counted_aucs_equal_scikit_learn_on_the_resampled_copy():
    rng = np.random.default_rng(4)
    targets = rng.integers(0, 2, (80, 3)).astype(float)
    targets[rng.random((80, 3)) < 0.2] = np.nan
    probs = np.round(rng.random((80, 3)), 1)  # many ties, inside and across classes
    counts = next(resample_counts(np.repeat(np.arange(20), 4), n_boot=30, seed=1))
    aucs = counted_aucs(probs, targets, counts)
    for b in range(30):
        rows = np.repeat(np.arange(80), counts[b])
        for j in range(3):
            known = ~np.isnan(targets[rows, j])
            assert aucs[b, j] == pytest.approx(roc_auc_score(targets[rows, j][known], probs[rows, j][known]))


def test_paired_comparison_interval_holds_the_observed_difference():
    rng = np.random.default_rng(2)
    t = rng.integers(0, 2, (150, 2)).astype(float)
    a, b = t + rng.normal(0, 0.8, t.shape), t + rng.normal(0, 1.5, t.shape)
    r = paired_comparison(t, a, b, ["X", "Y"], np.repeat(np.arange(50), 3), n_boot=500)
    for v in list(r["labels"].values()) + [r["mean"]]:
        assert v["ci95"][0] <= v["diff"] <= v["ci95"][1]
        assert v["diff"] == pytest.approx(v["auc_a"] - v["auc_b"])
    assert r["labels"]["X"]["auc_a"] == pytest.approx(roc_auc_score(t[:, 0], a[:, 0]))
    assert r["mean"]["diff"] > 0 and r["mean"]["p_bootstrap"] < 0.05


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3 * 0.01, max(.., 2 * 0.03), max(.., 1 * 0.04)
    assert holm([0.01, 0.04, 0.03, float("nan")])[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert np.isnan(holm([0.5, float("nan")])[1]) and holm([0.6, 0.7]) == [1.0, 1.0]


def test_interval_and_p_ignore_undefined_resamples():
    assert ci95(np.array([np.nan, 0.0, 1.0, 0.5])) == pytest.approx([0.025, 0.975])
    assert bootstrap_p(np.array([0.1, 0.2, -0.1, np.nan])) == pytest.approx(2 / 3)


def test_corrected_resampled_t_matches_a_hand_computed_example():
    """5 folds, A - B per fold 0.02, 0.01, 0.03, 0.00, 0.04: mean 0.02, sample variance 2.5e-4; each fold tests on
    1/5 and trains on 4/5, so n_test / n_train = 1/4 and t = 0.02 / sqrt((1/5 + 1/4) x 2.5e-4) = 1.885618 (the
    plain paired t, 0.02 / sqrt(2.5e-4 / 5) = 2.828427, is what the correction shrinks); df 4."""
    from scipy.stats import t as student

    from medcolor.tasks.stats import corrected_resampled_t

    r = corrected_resampled_t([0.02, 0.01, 0.03, 0.00, 0.04], n_train=4, n_test=1)
    assert abs(r["t"] - 1.885618) < 1e-6 and r["df"] == 4 and abs(r["mean_diff"] - 0.02) < 1e-12
    assert abs(r["p"] - 2 * student.sf(1.885618, 4)) < 1e-6 and 0.13 < r["p"] < 0.14
