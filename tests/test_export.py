import json

import numpy as np
import pandas as pd
import torch

from medcolor.cli import main
from medcolor.results.export import run_exported
from medcolor.training.runs import load_model


def test_exported_models_output_predicts_calibrated_probabilities(demo_runs, tmp_path, sample_dir, capsys):
    """The exported graph holds the temperature scaling: its output is predict's p_<label>, for another batch size
    too, and its sidecar says the thresholds apply to it."""
    from medcolor.tasks.calibration import calibrate
    from medcolor.tasks.classification import predict_rows

    _, runs = demo_runs
    spec, learn = load_model(runs[0])
    rows = pd.DataFrame({"path": [str(p) for p in sorted((sample_dir / "images").glob("*.png"))[:5]]})
    xb = learn.dls.test_dl(rows).one_batch()[0].as_subclass(torch.Tensor).float().cpu()
    cal = json.loads((runs[0] / "calibration.json").read_text())
    expected = calibrate(predict_rows(learn, rows, with_labels=False)[0], cal, spec.labels)
    for fmt, suffix in (("onnx", ".onnx"), ("torchscript", ".pt")):
        out = tmp_path / f"model{suffix}"
        assert main(["export", str(runs[0]), "--format", fmt, "--out", str(out)]) == 0
        captured = capsys.readouterr()
        assert "parity: max |difference|" in captured.out
        assert "trace" not in captured.err  # torch's TracerWarning: the parity check answers it
        sidecar = json.loads((tmp_path / f"model{suffix}.json").read_text())
        assert sidecar["labels"][-1] == "Any finding" and sidecar["preprocessing"]["input_shape"] == [None, 1, 32, 32]
        assert sidecar["output"]["temperature_scaled"] and sidecar["thresholds"] == cal["thresholds"]
        assert sidecar["parity_max_abs_diff"] < 1e-4
        exported = run_exported(out, fmt, xb)  # onnxruntime.InferenceSession / torch.jit.load
        assert exported.shape == expected.shape and np.abs(exported - expected).max() < 1e-5, fmt


def test_predict_with_an_exported_file_equals_predict_with_its_run(demo_runs, tmp_path, sample_dir):
    _, runs = demo_runs
    images = sorted((sample_dir / "images").glob("*.png"))[-40:]
    assert main(["predict", str(runs[1]), *map(str, images), "--out", str(tmp_path / "run.csv")]) == 0
    reference = pd.read_csv(tmp_path / "run.csv")
    for fmt, suffix in (("onnx", ".onnx"), ("torchscript", ".pt")):
        model = tmp_path / f"m{suffix}"
        assert main(["export", str(runs[1]), "--format", fmt, "--out", str(model)]) == 0
        assert main(["predict", str(model), *map(str, images), "--out", str(tmp_path / f"{fmt}.csv")]) == 0
        got = pd.read_csv(tmp_path / f"{fmt}.csv")
        assert list(got.columns) == list(reference.columns) and list(got["path"]) == list(reference["path"])
        p = [c for c in got.columns if c.startswith("p_")]
        assert np.abs(got[p].to_numpy() - reference[p].to_numpy()).max() < 1e-5, fmt
        decided = [c for c in got.columns if c.startswith("pred_")]
        assert len(decided) == 6 and got[decided].equals(reference[decided]), fmt


def test_export_refuses_bad_requests(demo_runs, tmp_path, capsys):
    _, runs = demo_runs
    assert main(["export", str(runs[0]), "--format", "tflite"]) == 2
    (tmp_path / "taken.onnx").write_text("x")
    assert main(["export", str(runs[0]), "--out", str(tmp_path / "taken.onnx")]) == 2
    assert main(["export", str(runs[0]), "--out", str(tmp_path / "no" / "m.onnx")]) == 2
    (tmp_path / "alone.onnx").write_text("x")
    assert main(["predict", str(tmp_path / "alone.onnx"), str(tmp_path / "taken.onnx")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert [e.split(" ")[0] for e in err] == ["error:"] * 4 and "already exists" in err[1]
