"""MedMNIST files: time and peak memory of `medcolor data check` (every image decoded) on a synthetic
ChestMNIST-sized file at 64 px (112,120 images, 14 labels), stored (np.savez: memory-mapped) and compressed
(np.savez_compressed, as the medmnist package writes them: each array read whole once), each in a fresh process,
next to the size of the image arrays themselves.

Usage: python benchmarks/medmnist_memory.py [N_IMAGES] [SIZE]   (defaults 112120 64)
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_check import measured  # noqa: E402


def write(root: Path, n: int, size: int, compressed: bool) -> None:
    rng = np.random.default_rng(0)
    parts = {"train": int(n * 0.7), "val": int(n * 0.1)}
    parts["test"] = n - sum(parts.values())
    arrays = {}
    base = rng.integers(0, 256, (64, size, size), dtype=np.uint8)  # repeated: quick to write, decoded for real
    for prefix, k in parts.items():
        arrays[f"{prefix}_images"] = base[np.arange(k) % 64]
        arrays[f"{prefix}_labels"] = (rng.random((k, 14)) < 0.1).astype(np.uint8)
    root.mkdir(parents=True)
    (np.savez_compressed if compressed else np.savez)(root / (f"chestmnist_{size}.npz" if size != 28 else
                                                             "chestmnist.npz"), **arrays)


if __name__ == "__main__" and sys.argv[1:2] == ["--write"]:
    write(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), bool(int(sys.argv[5])))
elif __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 112_120
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    print(f"{n:,} images of {size} x {size} ({n * size * size / 2**20:,.0f} MiB as uint8); load "
          f"{os.getloadavg()[0]:.1f}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        for compressed in (False, True):
            root = Path(tmp) / ("compressed" if compressed else "stored")
            # written by a process of its own: the measured process must not start from this one's memory
            subprocess.run([sys.executable, __file__, "--write", str(root), str(n), str(size), str(int(compressed))],
                           check=True)
            seconds, mib = measured(["data", "check", "medmnist", f"data.root={root}", "data.name=chestmnist",
                                     f"data.size={size}"], dict(os.environ))
            print(f"data check, {'compressed' if compressed else 'stored':<10}: {seconds:6.1f} s, peak {mib:,.0f} MiB")
