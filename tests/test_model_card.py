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


def card_of(recipe_name: str, overrides=(), reader_result=None) -> str:
    from medcolor.training.model_card import render
    from medcolor.training.recipes import load_recipe

    recipe = load_recipe(recipe_name, list(overrides))
    result = reader_result or {"split": "test", "n_images": 10, "best_epoch": 1, "seconds": 3.0, "auc": {"a": 0.7},
                               "mean_auc": 0.7, "auc_ci95": {"a": [0.6, 0.8]}, "mean_auc_ci95": [0.6, 0.8]}
    return render(recipe, result, {"train": 8, "test": 10}, ["a"], (1, 2), {}, None, "ImageNet")


def test_the_card_names_the_real_schedule_optimiser_and_stopping():
    card = card_of("ixi-ae-small-mse", reader_result={"split": "test", "n_images": 4, "best_epoch": 3, "seconds": 9.0,
                                                       "psnr": {"mean": 30.0}, "ssim": {"mean": 0.9},
                                                       "stopped_early": {"epoch": 5, "why": "no gain in 3 epochs"}})
    assert "with ReduceLROnPlateau on valid_loss" in card and "one-cycle" not in card and "rmsprop" in card
    assert "training stopped early after epoch 5" in card and "no gain in 3 epochs" in card
    assert "sgd one-cycle" in card_of("demo")
    assert "adamw cosine per epoch" in card_of("medmnistplus-end-to-end", ["data.name=breastmnist"])


def test_the_card_says_what_the_bootstrap_resamples_and_what_mode_1_trains():
    demo = card_of("demo", ["model.colorizer=none"])  # the NIH layout: patients; mode 1 without a colorizer: head
    assert "bootstrap over patients" in demo and "mode 1 (head)" in demo and "colorizer + head" not in demo
    medmnist = card_of("medmnist-finetune", ["data.name=breastmnist", "model.colorizer=coloru"])
    assert "bootstrap over images" in medmnist and "mode 2 (fine-tune all)" in medmnist
    assert "mode 1 (colorizer + head)" in card_of("demo")  # ColorU
