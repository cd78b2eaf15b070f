import json
import subprocess
import sys

from medcolor.cli import main


def test_model_summary_json(capsys):
    assert main(["model", "summary", "--colorizer", "coloru", "--mode", "1", "--n-out", "5", "--json",
                 "--image-size", "64"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["trainable_params"] == 195_224 and out["total_params"] == 11_371_736
    assert out["backbone"] == "resnet18" and out["colorizer"] == "coloru" and out["mode"] == 1


def test_model_summary_table_shows_colorizer_cost(capsys):
    assert main(["model", "summary", "--colorizer", "deconv"]) == 0
    assert "colorizer adds 104% to the backbone's cost" in capsys.readouterr().out


def test_bad_input_is_one_line_and_exit_2(capsys):
    assert main(["model", "summary", "--colorizer", "rainbow"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown colorizer 'rainbow'") and err.count("\n") == 1
    assert main(["model", "summary", "--mode", "4"]) == 2
    assert main(["model", "summary", "--no-such-flag"]) == 2
    assert "error: No such option" in capsys.readouterr().err


def test_console_script_help_and_exit_codes():
    run = subprocess.run([sys.executable, "-m", "medcolor", "--help"], capture_output=True, text=True)
    assert run.returncode == 0 and "model" in run.stdout
    run = subprocess.run([sys.executable, "-m", "medcolor", "model", "summary", "--backbone", "resnet81"],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr and "did you mean" in run.stderr
