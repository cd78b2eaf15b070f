import torch

from medcolor.data.volumes import denoise_input


def test_denoising_changes_the_input_only_sometimes_and_stays_in_range():
    torch.manual_seed(0)
    x = torch.rand(1, 32, 32)
    outs = [denoise_input(x) for _ in range(20)]
    assert any(not torch.equal(o, x) for o in outs) and all(0 <= o.min() and o.max() <= 1 for o in outs)


def test_slices_are_read_into_memory_once_per_volume_and_match_the_disk_path(tmp_path):
    from medcolor.data import load_data_config
    from medcolor.data import volumes
    from medcolor.data.volumes import build_paired_dls

    from fixtures import ixi

    cfg = load_data_config("ixi", ["slices=5:9", "denoise=false"], root=str(ixi(tmp_path)))
    volumes.load_volume.cache_clear()
    dls, _ = build_paired_dls(cfg, 32, bs=4)
    train, valid = dls.train_ds, dls.valid_ds
    assert volumes.load_volume.cache_info().misses == len(set(train.rows["path"]) | set(valid.rows["path"]))
    assert all(a is not None and a.dtype.name == "float16" for a in train.stored + valid.stored)
    on_disk = volumes.PairedImages(valid.rows, cfg, 32, train=False)  # no stored items: read when asked
    assert all(torch.equal(valid[i][1], on_disk[i][1]) for i in range(len(valid)))


def test_slices_that_do_not_fit_in_ram_are_read_from_disk(tmp_path, capsys):
    from medcolor.data import load_data_config
    from medcolor.data.volumes import build_paired_dls

    from fixtures import ixi

    cfg = load_data_config("ixi", ["slices=5:9", "in_memory=never"], root=str(ixi(tmp_path)))
    dls, _ = build_paired_dls(cfg, 32, bs=4)
    assert all(a is None for a in dls.train_ds.stored) and dls.one_batch()[0].shape == (4, 1, 32, 32)
