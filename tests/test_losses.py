import numpy as np
import torch
import torch.nn.functional as F

from medcolor.tasks.losses import MaskedBCEWithLogits, SoftTargetCrossEntropy, class_weights


def test_pos_weight_auto_is_negatives_over_positives_per_label_counted_by_hand():
    t = np.array([[1, 0, np.nan], [0, 0, 1], [0, 0, 0], [0, 1, 0], [1, 0, 0]], dtype=np.float32)
    # label 0: 2 positives, 3 negatives; label 1: 1 / 4; label 2: 1 positive, 3 negatives (one unknown)
    assert np.allclose(class_weights(t, single_label=False), [3 / 2, 4 / 1, 3 / 1])
    none = np.zeros((300, 1), np.float32)
    none[0] = 1
    assert class_weights(none, False)[0] == 100.0  # 299 / 1, clipped


def test_single_label_class_weights_are_scikit_learns_balanced():
    from sklearn.utils.class_weight import compute_class_weight

    y = np.array([0, 0, 0, 1, 2, 2])
    onehot = np.eye(3, dtype=np.float32)[y]
    assert np.allclose(class_weights(onehot, True), compute_class_weight("balanced", classes=np.arange(3), y=y))


def test_weighted_losses_are_pytorchs():
    g = torch.Generator().manual_seed(0)
    logits, t = torch.randn(6, 3, generator=g), (torch.rand(6, 3, generator=g) > 0.5).float()
    w = [2.0, 0.5, 3.0]
    assert torch.allclose(MaskedBCEWithLogits(w)(logits, t),
                          F.binary_cross_entropy_with_logits(logits, t, pos_weight=torch.tensor(w)))
    t[0, 1] = float("nan")  # unknown targets are left out, weighted or not
    known = ~torch.isnan(t)
    full = F.binary_cross_entropy_with_logits(logits, t.nan_to_num(0), pos_weight=torch.tensor(w), reduction="none")
    assert torch.allclose(MaskedBCEWithLogits(w)(logits, t), full[known].mean())
    assert torch.allclose(MaskedBCEWithLogits()(logits, t), F.binary_cross_entropy_with_logits(logits[known], t[known]))
    onehot = torch.eye(3)[torch.tensor([0, 1, 2, 2, 1, 0])]
    assert torch.allclose(SoftTargetCrossEntropy(w)(logits, onehot),  # one-hot rows: the class-index weighted mean
                          F.cross_entropy(logits, onehot.argmax(1), weight=torch.tensor(w)))
    assert torch.allclose(SoftTargetCrossEntropy()(logits, onehot), F.cross_entropy(logits, onehot.argmax(1)))


def test_a_batch_with_no_known_target_adds_zero_loss_and_zero_gradient():
    """CheXpert's u-ignore leaves rare labels unknown: a small batch can hold none known (it used to give NaN)."""
    logits = torch.randn(4, 3, requires_grad=True)
    loss = MaskedBCEWithLogits()(logits, torch.full((4, 3), float("nan")))
    loss.backward()
    assert loss.item() == 0 and torch.equal(logits.grad, torch.zeros(4, 3))
    some = torch.tensor([[1.0, float("nan"), 0.0]] * 4)
    expected = F.binary_cross_entropy_with_logits(logits[:, [0, 2]], some[:, [0, 2]])
    assert torch.allclose(MaskedBCEWithLogits()(logits, some), expected)
