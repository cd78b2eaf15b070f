"""model_card.md of a finished run: what was trained on what, how well (with CIs), calibrated how, at what cost,
and what it must not be used for. Built from the run's own files and counts, never from templates of numbers."""
from __future__ import annotations

from ..core.config import Recipe
from ..data.readers import group_unit
from ..core.archs import get_mode, gray_replicated, uses_colorizer


SCHEDULES = {"one_cycle": "one-cycle", "plateau": "with ReduceLROnPlateau on valid_loss",
             "cosine": "cosine per epoch (no warm-up)"}


def stopping(t, result: dict) -> str:
    """How training ended: all epochs, or early, at which epoch and why."""
    stopped = result.get("stopped_early")
    if stopped:
        return f"; training stopped early after epoch {stopped['epoch']} of {t.total_epochs}: {stopped['why']}"
    rule = f" (early stopping with patience {t.early_stop_patience} did not trigger)" if t.early_stop_patience else ""
    return f"; all {t.total_epochs} epochs trained{rule}"


def _ci(ci) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""


def results_section(result: dict, calibration: dict | None, groups: str = "patients") -> list[str]:
    if "auc" not in result:
        return [f"- {k.upper()}: {v['mean']:.4f}" if isinstance(v, dict) else f"- {k}: {v}"
                for k, v in result.items() if k in ("psnr", "ssim")]
    ci = result.get("auc_ci95", {})
    lines = [f"| label | AUC | 95% CI (bootstrap over {groups}) |", "|---|---|---|"]
    lines += [f"| {lab} | {auc:.4f} | {_ci(ci.get(lab))} |" for lab, auc in result["auc"].items()]
    lines.append(f"| **mean** | **{result['mean_auc']:.4f}** | {_ci(result.get('mean_auc_ci95'))} |")
    if "acc" in result:
        lines += ["", f"ACC (accuracy as MedMNIST reports it: arg-max for one class per image, else each label at "
                      f"0.5): {result['acc']:.4f}"]
    if calibration:
        lines += ["", f"Calibration and operating points, fitted on the validation split ({calibration['n_images']} "
                  f"images; thresholds: {calibration['threshold_rule']}):", "",
                  "| label | temperature | threshold | ECE before -> after (valid) |", "|---|---|---|---|"]
        lines += [f"| {lab} | {calibration['temperature'][lab]:.3f} | {thr:.3f} | "
                  f"{calibration['ece_valid'].get(lab, float('nan')):.3f} -> "
                  f"{calibration['ece_valid_calibrated'].get(lab, float('nan')):.3f} |"
                  for lab, thr in calibration["thresholds"].items()]
    return lines


def imbalance(t) -> str:
    weights = "loss weighted per label by negatives / positives of the training split (train.pos_weight: auto, " \
              "clipped to [0.01, 100]; single-label: balanced class weights)" if t.pos_weight else "unweighted loss"
    return weights + ("; batches drawn by fastai's WeightedDL, each image 1 / (images of its class)"
                      if t.sampler == "balanced" else "; shuffled batches")


def render(recipe: Recipe, result: dict, split_sizes: dict, labels: list[str], params: tuple[int, int],
           env: dict, calibration: dict | None, start: str) -> str:
    m, d, t = recipe.model, recipe.data, recipe.train
    model = f"{m.backbone} + `{m.colorizer}` colorizer" if uses_colorizer(m.arch) else m.arch
    sizes = ", ".join(f"{k} {v:,}" for k, v in split_sizes.items())
    lines = [f"# Model card: {recipe.name} (seed {t.seed})", "", recipe.description or "", "",
             "## Model", "",
             f"- {model}, {get_mode(m.mode).label(not gray_replicated(m.colorizer))}; task: {recipe.task}",
             f"- weights started from: {start}",
             f"- parameters: {params[0]:,} trained of {params[1]:,}",
             "", "## Data", "",
             f"- spec `{d.spec}`, root `{d.root or '(bundled)'}`" + (f", table `{d.csv}`" if d.csv else ""),
             (f"- labels: {', '.join(labels)}" + (f" (policy `{d.policy}`)" if d.reader in ("chexpert", "csv") else "")
              if labels else "- target: the input image itself"),
             f"- images per split: {sizes}" + (f" (subset fraction {d.subset.fraction:g})" if d.subset.fraction < 1 else "")
             + (f"; cross-validation fold {d.fold} of {d.folds}: train + valid pooled and cut into {d.folds} folds "
                f"grouped by patient (fold seed {d.fold_seed}), this fold validates" if d.folds else ""),
             "", f"## Results on the {result['split']} split ({result.get('n_images', '?')} images, best epoch "
             f"{result['best_epoch']})", ""]
    lines += results_section(result, calibration, group_unit(d.reader))
    lines += ["", "## Training", "",
              f"- epochs {t.epochs}, {t.opt} {SCHEDULES[t.schedule]}, max_lr {t.max_lr:g}, batch {t.bs}, {t.image_size} px, "
              f"seed {t.seed}" + (f"; body at max_lr / {t.lr_mult:g}" if t.lr_mult != 1 else "")
              + (f"; after {t.freeze_epochs} epoch(s) with the body frozen" if t.freeze_epochs else ""),
              f"- class imbalance: {imbalance(t)}",
              f"- best.pth: the epoch with the best validation {result.get('monitor', 'score')} (epoch "
              f"{result['best_epoch']})" + stopping(t, result),
              f"- {result['seconds']:.0f} s on {env.get('device', '?')} ({env.get('cpu_count', '?')} CPU cores, "
              f"{env.get('torch_threads', '?')} torch threads); torch {env.get('torch')}, fastai {env.get('fastai')}, "
              f"timm {env.get('timm')}, medcolor {env.get('medcolor')}",
              "", "## Intended use and limitations", "",
              "- For research on transfer learning for grayscale medical images. Not a medical device; not for "
              "diagnosis or triage.",
              f"- Trained and tested on `{d.spec}` only: performance on other hospitals, scanners, views or "
              "populations is unknown and usually lower.",
              "- Labels of public chest X-ray sets are mined from reports and noisy; the test AUCs above carry the "
              "uncertainty shown by their intervals - with few positives per label, differences inside them are noise.",
              "- Probabilities are calibrated (when a calibration table is shown) on validation images of the same "
              "distribution; recalibrate and re-choose thresholds on local data before any use."]
    return "\n".join(lines) + "\n"
