from types import SimpleNamespace

import torch

from medcolor.callbacks import FMix, fmix_mask


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
