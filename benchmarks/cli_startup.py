"""CLI start-up time: `medcolor --help` and `medcolor model --help` (best of 5 runs, wall clock)."""
import subprocess
import sys
import time
from pathlib import Path


def best_of(cmd, n=5):
    times = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return min(times)


if __name__ == "__main__":
    exe = str(Path(sys.executable).parent / "medcolor")  # run with the venv python: make bench
    for args in (["--help"], ["model", "--help"]):
        print(f"medcolor {' '.join(args):<14} {best_of([exe, *args]):.3f} s")
