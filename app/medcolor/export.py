"""`medcolor export`: a finished classifier (colorizer + backbone + activation) as ONNX or TorchScript, a sidecar
JSON with everything needed to feed it (input size, gray normalisation, labels, temperature and thresholds), and
a parity check against the fastai model on validation images."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import calibration
from .errors import RunError, UsageError
from .io import check_output_file, claim_new, write_json
from .runs import load_run
from .tasks import task_of

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
PARITY_LIMIT = 1e-4


class WithActivation(nn.Module):
    """The model followed by its loss's activation: the exported file outputs probabilities."""

    def __init__(self, model: nn.Module, softmax: bool):
        super().__init__()
        self.model, self.softmax = model, softmax

    def forward(self, x):
        logits = self.model(x)
        return torch.softmax(logits, -1) if self.softmax else torch.sigmoid(logits)


def preprocessing(recipe) -> dict:
    d, size = recipe.data, recipe.train.image_size
    if d.resize_to and d.valid_resize:
        resize, side = f"squish the whole image to {d.valid_resize} x {d.valid_resize}", d.valid_resize
    elif d.resize_to:
        resize, side = f"squish to {d.resize_to} x {d.resize_to}, centre crop {size} x {size}", size
    else:
        resize, side = f"centre square crop of the shorter side, resized to {size} x {size}", size
    return {"input_shape": [None, 1, side, side], "decode": "8-bit gray (16-bit and DICOM scaled by bit depth)",
            "resize": resize, "normalise": f"(pixel / 255 - {d.mean}) / {d.std}", "mean": d.mean, "std": d.std}


def export_run(run_dir, fmt: str = "onnx", out: str | None = None) -> dict:
    if fmt not in FORMATS:
        raise UsageError(f"--format must be onnx or torchscript, got {fmt!r}")
    if out:
        check_output_file(Path(out))
    if fmt == "onnx":
        _require_onnx()
    recipe, learn = load_run(run_dir)
    if not task_of(recipe).predicts_labels:
        raise UsageError(f"{run_dir} is a {recipe.task} run; export packs classifiers")
    model = WithActivation(learn.model.float().cpu().eval(), learn.dls.table.single_label).eval()
    xb = learn.dls.valid.one_batch()[0].float().cpu()
    path = Path(out) if out else claim_new(Path(run_dir) / f"model{FORMATS[fmt]}")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        (_onnx if fmt == "onnx" else _torchscript)(model, xb, tmp)
        diff = parity(model, xb, tmp, fmt)
        if diff >= PARITY_LIMIT:
            raise RunError(f"exported {fmt} model differs from the fastai model by {diff:.2e} (limit {PARITY_LIMIT:g})")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    sidecar = {"model": path.name, "format": fmt, "run": str(run_dir), "recipe": recipe.name,
               "labels": list(learn.dls.vocab), "output": "softmax" if learn.dls.table.single_label else "sigmoid",
               "preprocessing": preprocessing(recipe), "calibration": calibration.read(run_dir),
               "parity_max_abs_diff": diff, "parity_images": len(xb)}
    write_json(path.with_name(path.name + ".json"), sidecar)
    return {"path": str(path), "sidecar": str(path) + ".json", "parity_max_abs_diff": diff, "n_images": len(xb)}


def _require_onnx() -> None:
    import importlib.util

    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"ONNX export needs {' and '.join(missing)}: pip install 'medcolor[export]'")


def _onnx(model, xb, path: Path) -> None:
    torch.onnx.export(model, (xb,), str(path), dynamo=False, input_names=["image"], output_names=["probabilities"],
                      dynamic_axes={"image": {0: "batch"}, "probabilities": {0: "batch"}}, opset_version=17)


def _torchscript(model, xb, path: Path) -> None:
    with torch.no_grad():
        torch.jit.trace(model, xb).save(str(path))


def run_exported(path: Path, fmt: str, xb: torch.Tensor) -> np.ndarray:
    """Outputs of an exported file: onnxruntime for ONNX, torch.jit.load for TorchScript."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {"image": xb.numpy()})[0]
    with torch.no_grad():
        return torch.jit.load(str(path)).eval()(xb).numpy()


def parity(model, xb: torch.Tensor, path: Path, fmt: str) -> float:
    with torch.no_grad():
        reference = model(xb).numpy()
    return float(np.abs(run_exported(path, fmt, xb) - reference).max())
