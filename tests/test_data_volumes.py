import torch

from medcolor.data.volumes import denoise_input


def test_denoising_changes_the_input_only_sometimes_and_stays_in_range():
    torch.manual_seed(0)
    x = torch.rand(1, 32, 32)
    outs = [denoise_input(x) for _ in range(20)]
    assert any(not torch.equal(o, x) for o in outs) and all(0 <= o.min() and o.max() <= 1 for o in outs)
