import json

from medcolor.cli import main


def test_every_finished_run_has_a_model_card(demo_runs, capsys):
    _, runs = demo_runs
    for run in runs:
        card = (run / "model_card.md").read_text()
        metrics = json.loads((run / "metrics.json").read_text())
        cal = json.loads((run / "calibration.json").read_text())
        assert card.startswith(f"# Model card: demo (seed {metrics['seed']})")
        assert "images per split: train 570, valid 230, test 200" in card
        lo, hi = metrics["mean_auc_ci95"]
        assert f"| **mean** | **{metrics['mean_auc']:.4f}** | [{lo:.3f}, {hi:.3f}] |" in card
        assert f"| Effusion | {cal['temperature']['Effusion']:.3f} | {cal['thresholds']['Effusion']:.3f} |" in card
        assert "## Intended use and limitations" in card and "Not a medical device" in card
    assert main(["model", "summary", "--backbone", "efficientnet_lite0", "--colorizer", "coloru", "--n-out", "6",
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    trained, total = summary["trainable_params"], summary["total_params"]
    assert f"- parameters: {trained:,} trained of {total:,}" in card
