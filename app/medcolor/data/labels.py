"""A trained run's labels matched to another dataset's, for external validation (`evaluate RUN --data SPEC`).

Names match when they are equal up to case, spaces and underscores (ChestX-ray14's `Pleural_Thickening` is
`Pleural Thickening`), or when they are known synonyms between the supported datasets. The one synonym there is
comes from torchxrayvision, which maps these datasets onto one label set and renames only CheXpert's
`Pleural Effusion` to ChestX-ray14's `Effusion`; every other finding the two share (Atelectasis, Cardiomegaly,
Consolidation, Edema, Pneumonia, Pneumothorax) has the same name in both. MURA's `Abnormal` has no counterpart, and
CheXpert's `No Finding` is the negation of medcolor's derived `Any finding`, not a synonym. `--labels-map
RUN_LABEL=DATA_LABEL` covers anything else."""
from __future__ import annotations

from ..core.config import DataConfig
from ..core.errors import UsageError
from ..core.io import warn

SYNONYMS = [{"effusion", "pleural effusion"}]


def canonical(label: str) -> str:
    return " ".join(label.replace("_", " ").lower().split())


def _same(a: str, b: str) -> bool:
    a, b = canonical(a), canonical(b)
    return a == b or any(a in group and b in group for group in SYNONYMS)


def parse_labels_map(items) -> dict[str, str]:
    """RUN_LABEL=DATA_LABEL strings -> {run label: data label}."""
    out = {}
    for item in items or []:
        run_label, sep, data_label = item.partition("=")
        if not sep or not run_label.strip() or not data_label.strip():
            raise UsageError(f"--labels-map takes RUN_LABEL=DATA_LABEL, got {item!r}")
        out[run_label.strip()] = data_label.strip()
    return out


def match_labels(run_labels: list[str], data_labels: list[str], labels_map: dict[str, str], where: str) -> dict:
    """{run label: data label} for every run label the dataset has; the others are named in one warning, and no
    shared label at all is an error."""
    unknown = [k for k in labels_map if k not in run_labels]
    missing = [v for v in labels_map.values() if v not in data_labels]
    if unknown or missing:
        raise UsageError("--labels-map: " + "; ".join(
            ([f"{unknown} are not labels of the run ({', '.join(run_labels)})"] if unknown else []) +
            ([f"{missing} are not labels of {where} ({', '.join(data_labels)})"] if missing else [])))
    matched = {}
    for label in run_labels:
        if label in labels_map:
            matched[label] = labels_map[label]
        else:
            same = [d for d in data_labels if _same(label, d)]
            if same:
                matched[label] = same[0]
    if not matched:
        raise UsageError(f"no label of the run ({', '.join(run_labels)}) is in {where} ({', '.join(data_labels)}); "
                         f"name pairs with --labels-map RUN_LABEL=DATA_LABEL")
    left_out = [lab for lab in run_labels if lab not in matched]
    if left_out:
        warn(f"{where} has no {', '.join(left_out)}: left out of the evaluation")
    return matched


def explicit_labels(overrides) -> bool:
    return any(o.split("=", 1)[0].removeprefix("data.") in ("labels", "any_finding") for o in overrides or [])


def widest(cfg: DataConfig, overrides) -> DataConfig:
    """The data config with every label its reader knows, unless the user chose labels: an external dataset is
    read for all its findings so that each can meet the run's."""
    from dataclasses import replace

    from .readers import CHEXPERT_LABELS

    if explicit_labels(overrides):
        return cfg
    if cfg.reader == "chexpert":
        return replace(cfg, labels=list(CHEXPERT_LABELS))
    if cfg.reader == "chestxray14":
        return replace(cfg, labels="all14", any_finding=True)
    return cfg
