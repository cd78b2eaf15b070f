"""Two CPU processes (gloo) train one model through fastai's distrib_ctx (accelerate's Accelerator)."""
import re
import subprocess
import sys


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_one_model(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()),
           "-m", "medcolor", "run", "recipe", "demo", "train.epochs=2", "train.image_size=32", "train.bs=32",
           "train.lr_find=false", "--runs-dir", str(tmp_path), "--quiet"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    prints = dict(re.findall(r"rank (\d): weights ([0-9a-f]{40})", run.stderr))
    assert set(prints) == {"0", "1"} and prints["0"] == prints["1"]  # one model, the same final weights
    runs = list((tmp_path / "demo").iterdir())
    assert len(runs) == 1 and (runs[0] / "metrics.json").is_file()  # only rank 0 writes a run folder
