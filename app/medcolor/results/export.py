"""`medcolor export`: a finished classifier as ONNX or TorchScript that decides like `medcolor predict`: the graph
holds colorizer, backbone, activation and the run's temperature scaling, so its output is what predict writes as
p_<label>, and the run's thresholds apply to it directly. A sidecar JSON holds the run's model description
(model.json: labels, preprocessing), the thresholds and the parity check; `predict MODEL.onnx|MODEL.pt` reads both."""
from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from ..core import runfolder
from ..core.errors import RunError, UsageError
from ..core.io import atomic_write, check_output_file, claim_new, removed_on_failure, write_json
from ..nets.models import Calibrated
from ..core.runfolder import ModelSpec
from ..training.runs import load_model, read_recipe, require_classifier

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
PARITY_LIMIT = 1e-4
PARITY_IMAGES = 8


def deployed(learn, spec: ModelSpec, cal: dict | None) -> Calibrated:
    """The graph predict computes: the model, its activation and the run's temperature scaling."""
    temps = [cal["temperature"][lab] for lab in spec.labels] if cal else None
    return Calibrated(learn.model.float().cpu().eval(), spec.single_label, temps).eval()


def preprocessing(spec: ModelSpec) -> dict:
    """The validation preprocessing in words and numbers, for readers of the sidecar outside medcolor."""
    i = spec.input
    if i.squish and i.crop is None:
        resize, side = f"squish the whole image to {i.size} x {i.size}", i.size
    elif i.squish:
        resize, side = f"squish to {i.size} x {i.size}, centre crop {i.crop} x {i.crop}", i.crop
    else:
        resize, side = f"resize the shorter side to {i.size}, centre crop {i.crop} x {i.crop}", i.crop
    rgb, pad = i.channels == 3, i.pad
    return {"input_shape": [None, 3 if rgb else 1, pad or side, pad or side],
            "decode": "8-bit RGB, channels first" if rgb else "8-bit gray (16-bit and DICOM scaled by bit depth)",
            "resize": resize, "normalise": f"(pixel / 255 - {i.mean}) / {i.std}", "mean": i.mean,
            "std": i.std, **({"pad": f"then zero-pad, centred, to {pad} x {pad} (0: the mean after normalising)"}
                                if pad else {})}


def parity_batch(spec: ModelSpec) -> torch.Tensor:
    """Seeded inputs in the normalised range: parity needs no image of the training data."""
    _, channels, side, _ = preprocessing(spec)["input_shape"]
    return torch.randn(PARITY_IMAGES, channels, side, side, generator=torch.Generator().manual_seed(0))


def export_run(run_dir, fmt: str = "onnx", out: str | None = None) -> dict:
    if fmt not in FORMATS:
        raise UsageError(f"--format must be onnx or torchscript, got {fmt!r}")
    if out:
        check_output_file(Path(out))
    if fmt == "onnx":
        _require_onnx()
    spec, learn = load_model(run_dir)
    require_classifier(spec, run_dir, "export")
    cal = runfolder.read_calibration(run_dir)
    model, xb = deployed(learn, spec, cal), parity_batch(spec)
    data = (_onnx if fmt == "onnx" else _torchscript)(model, xb)  # in memory: torch's own file writers abort the
    diff = parity(model, xb, data, fmt)                            # process on a full disk instead of raising
    if not diff < PARITY_LIMIT:  # NaN fails too
        raise RunError(f"exported {fmt} model differs from the fastai model by {diff:.2e} (limit {PARITY_LIMIT:g})")
    path = Path(out) if out else claim_new(Path(run_dir) / f"model{FORMATS[fmt]}")
    sidecar = {"model": path.name, "format": fmt, "run": str(run_dir), "recipe": read_recipe(run_dir).name,
               "labels": list(spec.labels),
               "output": {"name": "probabilities", "activation": "softmax" if spec.single_label else "sigmoid",
                          "temperature_scaled": cal is not None,
                          "thresholds_apply_to": "this output, as predict's p_<label>" if cal else None},
               "thresholds": cal["thresholds"] if cal else None, "preprocessing": preprocessing(spec),
               "model_spec": spec.to_dict(), "calibration": cal, "parity_max_abs_diff": diff,
               "parity_inputs": f"{len(xb)} seeded random inputs",
               "ensemble_members": len(spec.members) or None,
               "tta": "not in the graph: one pass per image (predict --tta N on the run folder augments)"}
    with removed_on_failure(path):  # the model and its sidecar, or neither
        atomic_write(path, data)
        write_json(sidecar_path(path), sidecar)
    return {"path": str(path), "sidecar": str(sidecar_path(path)), "parity_max_abs_diff": diff, "n_images": len(xb)}


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _require_onnx() -> None:
    import importlib.util

    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"ONNX export needs {' and '.join(missing)}: pip install 'medcolor[export]'")


@contextlib.contextmanager
def tracing_quietly():
    """torch's TracerWarning ('might not generalize to other inputs') is for graphs nobody checks; every export
    here is parity-checked against the model on seeded inputs, so the warning would only alarm the user."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        yield


def _onnx(model, xb) -> bytes:
    buffer = io.BytesIO()
    with tracing_quietly():
        torch.onnx.export(model, (xb,), buffer, dynamo=False, input_names=["image"], output_names=["probabilities"],
                          dynamic_axes={"image": {0: "batch"}, "probabilities": {0: "batch"}}, opset_version=17)
    return buffer.getvalue()


def _torchscript(model, xb) -> bytes:
    buffer = io.BytesIO()
    with torch.no_grad(), tracing_quietly():
        torch.jit.save(torch.jit.trace(model, xb), buffer)
    return buffer.getvalue()


def exported_runner(source, fmt: str):
    """A function from a batch to an exported model's outputs (a file, or its bytes): onnxruntime for ONNX,
    torch.jit.load for TorchScript; the model is loaded once."""
    if fmt == "onnx":
        import onnxruntime

        model = source if isinstance(source, bytes) else str(source)
        session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
        return lambda xb: session.run(None, {"image": xb.numpy()})[0]
    module = torch.jit.load(io.BytesIO(source) if isinstance(source, bytes) else str(source)).eval()

    def run(xb):
        with torch.no_grad():
            return module(xb).numpy()
    return run


def run_exported(source, fmt: str, xb: torch.Tensor) -> np.ndarray:
    return exported_runner(source, fmt)(xb)


def parity(model, xb: torch.Tensor, source, fmt: str) -> float:
    with torch.no_grad():
        reference = model(xb).numpy()
    return float(np.abs(run_exported(source, fmt, xb) - reference).max())


# ---- using an exported file ------------------------------------------------------------------------------------

def is_exported(path) -> bool:
    return Path(path).is_file() and Path(path).suffix in FORMATS.values()


def read_sidecar(path: Path) -> dict:
    side = sidecar_path(path)
    try:
        sidecar = json.loads(side.read_text())
        ModelSpec.from_dict(sidecar["model_spec"])
    except FileNotFoundError:
        raise UsageError(f"{path} has no sidecar {side.name} beside it; `medcolor export` writes both") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise UsageError(f"{side} is not a medcolor export sidecar (re-export the run with this medcolor)") from None
    return sidecar


def predict_exported(path: Path, rows) -> tuple[np.ndarray, list[str], dict | None]:
    """(the exported model's outputs for `rows`, labels, calibration) with the preprocessing its sidecar gives."""
    from ..data.block import inference_dls

    sidecar = read_sidecar(path)
    spec = ModelSpec.from_dict(sidecar["model_spec"])
    if sidecar["format"] == "onnx":
        _require_onnx()
    run = exported_runner(path, sidecar["format"])
    dls = inference_dls(spec, bs=64, device=torch.device("cpu"))
    outputs = [run(xb.as_subclass(torch.Tensor).float().cpu()) for xb, in dls.test_dl(rows, with_labels=False)]
    return np.concatenate(outputs), list(spec.labels), sidecar.get("calibration")
