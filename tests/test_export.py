import json

import numpy as np
import torch

from medcolor.cli import main
from medcolor.export import run_exported
from medcolor.runs import load_run


def test_exported_models_match_the_fastai_model(demo_runs, tmp_path, capsys):
    _, runs = demo_runs
    _, learn = load_run(runs[0])
    xb = torch.cat([learn.dls.valid.one_batch()[0], learn.dls.test_dl(learn.dls.table.split("test").head(5),
                                                                     with_labels=False).one_batch()[0]]).float()
    with torch.no_grad():
        reference = torch.sigmoid(learn.model.eval()(xb)).numpy()
    for fmt, suffix in (("onnx", ".onnx"), ("torchscript", ".pt")):
        out = tmp_path / f"model{suffix}"
        assert main(["export", str(runs[0]), "--format", fmt, "--out", str(out)]) == 0
        assert "parity: max |difference|" in capsys.readouterr().out
        sidecar = json.loads((tmp_path / f"model{suffix}.json").read_text())
        assert sidecar["labels"][-1] == "Any finding" and sidecar["preprocessing"]["input_shape"] == [None, 1, 32, 32]
        assert sidecar["calibration"]["thresholds"] and sidecar["parity_max_abs_diff"] < 1e-4
        exported = run_exported(out, fmt, xb)  # onnxruntime.InferenceSession / torch.jit.load, another batch size
        assert exported.shape == reference.shape and np.abs(exported - reference).max() < 1e-4, fmt


def test_export_refuses_bad_requests(demo_runs, tmp_path, capsys):
    _, runs = demo_runs
    assert main(["export", str(runs[0]), "--format", "tflite"]) == 2
    (tmp_path / "taken.onnx").write_text("x")
    assert main(["export", str(runs[0]), "--out", str(tmp_path / "taken.onnx")]) == 2
    assert main(["export", str(runs[0]), "--out", str(tmp_path / "no" / "m.onnx")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert [e.split(" ")[0] for e in err] == ["error:"] * 3 and "already exists" in err[1]
