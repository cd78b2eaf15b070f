import numpy as np
from PIL import Image

from medcolor.data.images import find_bad_images, open_gray


def test_16_bit_png_is_scaled_by_its_bit_depth_not_clipped(tmp_path):
    a = np.linspace(0, 4095, 64 * 64).reshape(64, 64).astype(np.uint16)  # 12-bit data in a 16-bit PNG
    Image.fromarray(a).save(tmp_path / "x.png")
    assert Image.open(tmp_path / "x.png").mode.startswith("I")
    g = np.asarray(open_gray(tmp_path / "x.png"))
    assert g.dtype == np.uint8 and g.max() == 255 and g.min() == 0
    assert abs(int(g[32, 0]) - round(a[32, 0] / 4095 * 255)) <= 1  # linear, not clipped at 255


def test_full_range_16_bit(tmp_path):
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(tmp_path / "w.png")
    assert np.asarray(open_gray(tmp_path / "w.png")).max() == 255


def test_rgba_and_rgb_become_one_gray_channel(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    g = open_gray(tmp_path / "a.png")
    assert g.mode == "L" and np.asarray(g)[0, 0] == round(200 * 0.299)


def test_bad_images_are_found(tmp_path, sample_dir):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    good = str(next((sample_dir / "images").glob("*.png")))
    missing, bad = find_bad_images([good, str(tmp_path / "broken.png"), str(tmp_path / "gone.png")])
    assert missing == [str(tmp_path / "gone.png")] and bad == [str(tmp_path / "broken.png")]


def test_float_tiffs_are_scaled_by_their_range(tmp_path):
    import numpy as np
    from PIL import Image

    from medcolor.data.images import open_gray

    unit = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    Image.fromarray(unit, "F").save(tmp_path / "unit.tif")
    Image.fromarray(unit * 3000 - 1000, "F").save(tmp_path / "hu.tif")
    for name in ("unit.tif", "hu.tif"):
        a = np.asarray(open_gray(tmp_path / name))
        assert a.dtype == np.uint8 and a.min() == 0 and a.max() == 255, name  # not "almost black"


def test_an_image_inside_a_medmnist_file_is_named_by_file_split_and_index_not_by_its_index_alone():
    from medcolor.data.images import image_name

    assert image_name("/data/medmnist/breastmnist.npz/test/12") == "breastmnist test #12"
    assert image_name("/data/xrays/00000165_005.png") == "00000165_005.png"
