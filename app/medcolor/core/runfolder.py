"""The run-folder format: the one place that names the files of a run folder, reads and writes them, and knows
which version of the format a folder is in.

    runs/<recipe>/<YYYYmmdd-HHMMSS>-<backbone>-s<seed>[-k]/
        model.json        what inference needs (version 2+): task, labels, network, input preprocessing
        recipe.yaml       the resolved recipe            env.json       versions and hardware
        best.pth          best weights                   last.pth       weights, optimiser, epoch, history, best
        history.csv       one row per epoch              evals.csv      mid-epoch evaluations
        metrics.json      final scores, `finished`       timing.json    seconds
        predictions.csv   the evaluated split            calibration.json  temperatures and thresholds
        model_card.md     plots/                         eval-*/ interpret-*/  result folders

An ensemble folder (`medcolor ensemble`, or a cross-validation folder `run recipe --folds K` makes) is a model
too: ensemble.json names its members (run folders, referenced with the checksums of their best.pth and
calibration.json, never copied), calibration.json holds its thresholds, metrics.json its test scores; a
cross-validation folder also holds its fold runs (`<run>-f1of5`, ...), folds.csv (image, group, fold) and
oof_predictions.csv (every pool image predicted once, by the fold model that did not train on it).

Version 1 is every folder written before model.json existed; it has no version stamp and is read through
`training.runs.model_spec`, which derives the same facts from recipe.yaml, predictions.csv and best.pth.
Every write is atomic and nothing here overwrites a result folder."""
from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .config import ModelConfig, Network, WeightsSource
from .errors import UsageError
from .io import (atomic_torch_save, atomic_write, is_plain_name, claim_new, load_tensors, read_yaml, removed_on_failure, write_csv,
                 write_json)

FORMAT_VERSION = 3  # 3: model.freeze_bn_stats true also keeps the body's statistics in mode 2

MODEL = "model.json"
RECIPE = "recipe.yaml"
ENV = "env.json"
BEST = "best.pth"
LAST = "last.pth"
HISTORY = "history.csv"
EVALS = "evals.csv"
METRICS = "metrics.json"
TIMING = "timing.json"
PREDICTIONS = "predictions.csv"
CALIBRATION = "calibration.json"
CARD = "model_card.md"
LR_FIND = "lr_find.json"
LR_FIND_SUFFIX = "-lrfind"  # an lr-find folder: a finished result of its own, never a run to resume or remove
OWNER = ".owner"
ENSEMBLE = "ensemble.json"
FOLDS = "folds.csv"
OOF = "oof_predictions.csv"
PLOTS = "plots"
COLORIZER_PLOT = "colorizer.png"  # in plots/: what the colorizer makes of a validation batch
INTERPRET_PREFIX = "interpret-"  # result folders of `medcolor interpret`
GRADCAM_GALLERY = "gradcam_gallery.png"  # in an interpret-* folder
EVAL_PREFIX = "eval-"  # result folders of `medcolor evaluate`: eval-<split or dataset>[-tta<N>]
INTERPRET_IMAGES = INTERPRET_PREFIX + "images"  # `interpret RUN IMAGE...`: the gallery of given images
ENSEMBLE_SUFFIX = "-ensemble"  # an ensemble folder: <time>-<backbone>-s<seeds>-ensemble


def eval_folder(source: str, tta: int = 0) -> str:
    return f"{EVAL_PREFIX}{source}" + (f"-tta{tta}" if tta else "")
# plots/ of a run, and the figures of result folders
LOSS_PLOT, LR_FIND_PLOT, ROC_PLOT = "loss.png", "lr_find.png", "roc.png"
RELIABILITY_PLOT, RECONSTRUCTIONS_PLOT = "reliability.png", "reconstructions.png"
TOP_LOSSES_PLOT, TOP_LOSSES, CONFUSION_PLOT = "top_losses.png", "top_losses.csv", "confusion.png"
COLORIZER_GALLERY, GRADCAM_TOP_LOSSES = "colorizer_gallery.png", "gradcam_top_losses.png"
INTERPRETATION = "interpretation.json"
AUC_VS_SIZE_PLOT, AUC_VS_REFERENCE_PLOT = "auc_vs_size.png", "auc_vs_reference.png"  # `medcolor report`'s figures
# predictions.csv (and oof_predictions.csv): path, split, group, <label>, p_<label> (probability), pred_<label>
PROB_PREFIX, PRED_PREFIX = "p_", "pred_"


def prob_columns(labels) -> list[str]:
    return [f"{PROB_PREFIX}{label}" for label in labels]


def labels_of(columns) -> list[str]:
    """The labels of a predictions table, from its probability columns."""
    return [c[len(PROB_PREFIX):] for c in columns if c.startswith(PROB_PREFIX)]


@dataclass(frozen=True)
class InputSpec:
    """The validation preprocessing: the shorter side resized to `size` (or both sides with `squish`), a centre
    crop of `crop` (None: none), pixel / 255 normalised with `mean` / `std`, zero-padded to `pad`; gray, or RGB."""
    size: int
    squish: bool
    crop: int | None
    mean: float | list
    std: float | list
    channels: int = 1
    pad: int | None = None

    def to_dict(self) -> dict:
        """model.json's "input" (channels and pad only where they are not the defaults, as format 2 wrote it)."""
        out = asdict(self)
        return {k: v for k, v in out.items() if not (k == "channels" and v == 1 or k == "pad" and v is None)}

    @classmethod
    def from_dict(cls, data: dict) -> "InputSpec":
        return cls(**data)


@dataclass(frozen=True)
class ModelSpec:
    """What it takes to rebuild a run's network and feed it one image - the run's `pretrained_cfg`: its task and
    labels, the network (without starting weights: best.pth holds the weights) and the input preprocessing. An
    ensemble's spec has its members' networks instead of one."""

    task: str
    labels: list
    single_label: bool
    network: Network | None
    input: InputSpec
    format_version: int = FORMAT_VERSION
    members: tuple = ()  # an ensemble's member networks

    def to_dict(self) -> dict:
        """model.json: the network written as the model section of a recipe with no starting weights."""
        model = {"ensemble": [asdict(ModelConfig.of(n)) for n in self.members]} if self.members else \
            asdict(ModelConfig.of(self.network))
        return {"task": self.task, "labels": list(self.labels), "single_label": self.single_label, "model": model,
                "input": self.input.to_dict(), "format_version": self.format_version}

    @classmethod
    def from_dict(cls, data: dict) -> "ModelSpec":
        """model.json (any format from 2 on) or an export's sidecar; a TypeError or KeyError for anything else."""
        data = dict(data)
        model, preprocessing = data.pop("model"), InputSpec.from_dict(data.pop("input"))
        members = tuple(network_of(m) for m in model["ensemble"]) if "ensemble" in model else ()
        return cls(**data, network=None if members else network_of(model), input=preprocessing, members=members)


def network_of(model: dict) -> Network:
    """The network of a model section (model.json's, or a recipe's): its starting-weight fields are left out."""
    names = {f.name for f in fields(Network)}
    unknown = set(model) - names - {f.name for f in fields(WeightsSource)}
    if unknown:
        raise TypeError(f"unknown model fields {sorted(unknown)}")
    return Network(**{k: v for k, v in model.items() if k in names})


# ---- naming and making folders -------------------------------------------------------------------------------

def check_name(name: str, what: str = "recipe name") -> str:
    if not is_plain_name(name):
        raise UsageError(f"{what} {name!r} must be one plain name (no '/', '..' or absolute paths)")
    return name


def new_run_dir(runs_dir: Path, recipe: str, backbone: str, seed: int, suffix: str = "", parent: Path | None = None,
                plots: bool = True) -> Path:
    """A fresh run folder with an empty plots/ inside, in runs_dir/<recipe>/ or in `parent` (a cross-validation
    folder's fold runs)."""
    parent = Path(parent) if parent is not None else Path(runs_dir) / check_name(recipe)
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{backbone.replace('/', '_')}-s{seed}{suffix}"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        path = claim_new(parent / stem, is_dir=True)
    except OSError as e:
        raise UsageError(f"cannot create a run folder in {parent}: {e.strerror}; pass --runs-dir to a writable "
                         f"place") from None
    write_owner(path)
    if plots:
        (path / PLOTS).mkdir()
    return path


def fold_suffix(fold: int, folds: int) -> str:
    return f"-f{fold}of{folds}" if folds else ""


def cv_suffix(folds: int) -> str:
    return f"-cv{folds}"


@contextmanager
def result_dir(run_dir: Path, name: str):
    """A new result folder inside a run (eval-test, interpret-valid, eval-chexpert-valid-2 ...), never reused, and
    removed again when what fills it fails (a full disk, Ctrl-C): no half-written result folder is left."""
    path = claim_new(Path(run_dir) / name, is_dir=True)  # a folder it cannot make is one line (UsageError)
    with removed_on_failure(path):
        yield path


def plot_path(run_dir: Path, name: str) -> Path:
    return Path(run_dir) / PLOTS / name


# ---- what a folder is ----------------------------------------------------------------------------------------

def is_run_dir(run_dir: Path) -> bool:
    return (Path(run_dir) / RECIPE).is_file() and (Path(run_dir) / BEST).is_file()


def is_ensemble_dir(folder: Path) -> bool:
    return (Path(folder) / ENSEMBLE).is_file()


def is_cv_dir(folder: Path) -> bool:
    return (Path(folder) / FOLDS).is_file() and is_ensemble_dir(folder)


def is_finished(run_dir: Path) -> bool:
    """A run that wrote its best checkpoint and a metrics.json saying it finished."""
    run_dir = Path(run_dir)
    try:
        return (run_dir / BEST).is_file() and json.loads((run_dir / METRICS).read_text())["finished"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


def format_version(run_dir: Path) -> int:
    """2 and later stamp model.json; a folder without it was written by version 1."""
    spec = read_model_spec(run_dir)
    return spec.format_version if spec else 1


def write_owner(run_dir: Path) -> None:
    """Which process works in the folder (host and pid): a folder whose process is gone and that did not finish
    was stopped (kill -9, out of memory, a power cut)."""
    write_json(Path(run_dir) / OWNER, _owner())


def owner_alive(where: Path) -> bool:
    """True while the process named by a run folder's .owner (or a claim file) runs, or when that cannot be known
    (another host)."""
    path = Path(where) / OWNER if Path(where).is_dir() else Path(where)
    try:
        owner = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return process_alive(owner)


def process_alive(owner: dict) -> bool:
    """Whether the process {"host", "pid"} runs; True when that cannot be known (another host)."""
    if not isinstance(owner, dict):
        return False
    if owner.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(owner["pid"]), 0)
        return True
    except (ProcessLookupError, ValueError, KeyError, TypeError):
        return False
    except PermissionError:
        return True


def this_process() -> dict:
    """{"host", "pid"} of this process, as .owner and claims record it."""
    return _owner()


def stale_runs(runs_dir: Path, recipe: str) -> list[Path]:
    """Run folders of `recipe` that did not finish and whose process is gone (a folder without an owner counts once
    it is a minute old)."""
    parent = Path(runs_dir) / recipe
    if not parent.is_dir():
        return []

    def gone(p: Path) -> bool:
        return not owner_alive(p) and ((p / OWNER).exists() or time.time() - p.stat().st_mtime > 60)
    return sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith(".") and not is_finished(p)
                  and not p.name.endswith(LR_FIND_SUFFIX) and not is_ensemble_dir(p) and not (p / FOLDS).exists()
                  and gone(p))


CLAIMS = ".claims"


def claim(runs_dir: Path, key: str) -> Path | None:
    """Claim the run that `key` (a resolved recipe) describes for this process: a file in runs_dir/.claims created
    exclusively (O_EXCL works on local and NFSv3+ file systems), or None while a live process holds it. A claim whose
    process is gone (same host) is taken over."""
    folder = Path(runs_dir) / CLAIMS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.json"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if _claim_alive(path) or _just_made(path):  # alive, or still being written by its maker
                return None
            path.unlink(missing_ok=True)  # its process died: take it over
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(_owner(), f)
        return path
    return None


CLAIM_HEARTBEAT = 60.0  # seconds between the touches of a held claim (train.train_shared)


def _claim_alive(path: Path) -> bool:
    """A claim of this host lives while its process does; one of another host while it is touched (heartbeat)."""
    try:
        host = json.loads(path.read_text()).get("host")
    except (OSError, ValueError, AttributeError):
        return False
    if host == socket.gethostname():
        return owner_alive(path)
    try:
        return time.time() - path.stat().st_mtime < 10 * CLAIM_HEARTBEAT
    except OSError:
        return False


def _just_made(path: Path, seconds: float = 10.0) -> bool:
    try:
        return time.time() - path.stat().st_mtime < seconds and not path.read_text().strip()
    except OSError:
        return False


def _owner() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def finished_runs(runs_dir: Path, recipe: str) -> list[Path]:
    """Finished run folders of `recipe`, newest first."""
    parent = Path(runs_dir) / recipe
    if not parent.is_dir():
        return []
    return sorted((p for p in parent.iterdir() if is_finished(p)), key=lambda p: p.name, reverse=True)


# ---- reading and writing its files -------------------------------------------------------------------------

def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist ({what})") from None
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read {what} {path}: {str(e).splitlines()[0][:150]}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} does not hold a JSON object ({what})")
    return data


RECIPE_SECTIONS = ("name", "task", "data", "model", "train")  # every recipe.yaml medcolor writes has them all


def saved_recipe(run_dir: Path) -> dict:
    """The resolved recipe a run folder keeps (recipe.yaml), as a plain mapping with every section."""
    path = Path(run_dir) / RECIPE
    saved = read_yaml(path, "recipe")
    missing = [k for k in RECIPE_SECTIONS if k not in saved or (k in ("data", "model", "train") and
                                                                not isinstance(saved[k], dict))]
    if missing:
        raise UsageError(f"{path} lacks {', '.join(missing)}: it is not the recipe medcolor wrote for this run; "
                         f"restore it from a copy")
    check_network_unchanged(run_dir, saved["model"])
    return saved


NETWORK_FIELDS = ("arch", "backbone", "colorizer", "head")  # what the shapes in best.pth depend on


def check_network_unchanged(run_dir: Path, model: dict) -> None:
    """recipe.yaml and model.json, written together when the run started, name the same network: an edited
    recipe.yaml would otherwise describe a model other than the one every command scores."""
    spec = read_model_spec(run_dir)
    if spec is None:
        return
    defaults = asdict(ModelConfig())
    for field in NETWORK_FIELDS:
        said, trained = model.get(field, defaults[field]), getattr(spec.network, field)
        if said != trained:
            raise UsageError(f"{Path(run_dir) / RECIPE} says model.{field}={said} but the run trained {trained} "
                             f"({MODEL}): recipe.yaml was edited after training; restore it, or train a new run")


def write_start(run_dir: Path, recipe_yaml: str, env: dict, spec: ModelSpec | None) -> None:
    """What a run writes before training (new_run_dir has stamped its owner): recipe.yaml, env.json, model.json."""
    atomic_write(Path(run_dir) / RECIPE, recipe_yaml)
    write_json(Path(run_dir) / ENV, env)
    if spec is not None:
        write_json(Path(run_dir) / MODEL, spec.to_dict())


def read_model_spec(run_dir: Path) -> ModelSpec | None:
    """model.json, or None for a version-1 folder."""
    path = Path(run_dir) / MODEL
    if not path.is_file():
        return None
    data = _read_json(path, "model description")
    try:
        return ModelSpec.from_dict(data)
    except (TypeError, KeyError, AttributeError):
        raise UsageError(f"{path} is not a medcolor model description (fields {sorted(data)})") from None


def read_env(run_dir: Path) -> dict:
    return _read_json(Path(run_dir) / ENV, "environment")


def read_metrics(run_dir: Path) -> dict:
    return _read_json(Path(run_dir) / METRICS, "metrics")


def write_final(run_dir: Path, metrics: dict, seconds: float) -> None:
    write_json(Path(run_dir) / TIMING, {"seconds": seconds})
    write_json(Path(run_dir) / METRICS, metrics)


def write_metrics(folder: Path, metrics: dict) -> None:
    """metrics.json of an ensemble or cross-validation folder (a run's goes with its timing: write_final)."""
    write_json(Path(folder) / METRICS, metrics)


def read_seconds(run_dir: Path) -> float | None:
    path = Path(run_dir) / TIMING
    return _read_json(path, "timing").get("seconds") if path.is_file() else None


def read_calibration(run_dir: Path) -> dict | None:
    path = Path(run_dir) / CALIBRATION
    if not path.is_file():
        return None
    cal = _read_json(path, "calibration")
    if not {"temperature", "thresholds", "activation"} <= set(cal):
        raise UsageError(f"{path} lacks temperature / thresholds / activation; refit it with `medcolor calibrate "
                         f"{run_dir} --replace`")
    return cal


def calibration_path(run_dir: Path) -> Path:
    return Path(run_dir) / CALIBRATION


def write_calibration(run_dir: Path, cal: dict) -> None:
    write_json(calibration_path(run_dir), cal)


def write_predictions(folder: Path, frame) -> None:
    write_csv(Path(folder) / PREDICTIONS, frame)


def read_predictions(folder: Path):
    """(labels, predictions.csv) of a finished classification run or of one of its evaluation folders
    (eval-*): path, split, group, <label>, p_<label>."""
    import pandas as pd

    folder = Path(folder)
    if not (is_finished(folder) or (folder / PREDICTIONS).is_file() and (folder / METRICS).is_file()):
        raise UsageError(f"{folder} is not a finished run folder (no best.pth / finished metrics.json) nor an "
                         f"evaluation folder (eval-*)")
    if not (folder / PREDICTIONS).is_file():
        raise UsageError(f"{folder} has no {PREDICTIONS}")
    frame = pd.read_csv(folder / PREDICTIONS, keep_default_na=False, na_values=[""])
    labels = labels_of(frame.columns)
    if not labels or "path" not in frame:
        raise UsageError(f"{folder / PREDICTIONS} holds no path and label probabilities (a reconstruction run?)")
    return labels, frame


def predicted_labels(run_dir: Path) -> list[str] | None:
    """The label order of a run's outputs as its predictions.csv header gives them (version-1 folders)."""
    path = Path(run_dir) / PREDICTIONS
    if not path.is_file():
        return None
    with open(path) as f:
        header = f.readline().rstrip("\n")
    import csv
    return labels_of(next(csv.reader([header]))) or None


def load_checkpoint(path: Path) -> dict:
    return load_tensors(path, "checkpoint")


def best_weights(run_dir: Path) -> Path:
    return Path(run_dir) / BEST


def read_last(run_dir: Path) -> dict:
    return load_checkpoint(Path(run_dir) / LAST)


def has_last(run_dir: Path) -> bool:
    return (Path(run_dir) / LAST).is_file()


def save_best(run_dir: Path, state_dict: dict) -> None:
    atomic_torch_save(state_dict, Path(run_dir) / BEST)


def save_last(run_dir: Path, state: dict) -> None:
    atomic_torch_save(state, Path(run_dir) / LAST)


def write_history(run_dir: Path, rows: list[dict]) -> None:
    import pandas as pd
    atomic_write(Path(run_dir) / HISTORY, pd.DataFrame(rows).to_csv(index=False))


def write_evals(run_dir: Path, rows: list[dict]) -> None:
    import pandas as pd
    atomic_write(Path(run_dir) / EVALS, pd.DataFrame(rows).to_csv(index=False))


def write_card(run_dir: Path, text: str) -> None:
    atomic_write(Path(run_dir) / CARD, text)


def write_lr_find(run_dir: Path, result: dict) -> None:
    write_json(Path(run_dir) / LR_FIND, result)


# ---- ensembles and cross-validation ---------------------------------------------------------------------------

def checksum(path: Path) -> str | None:
    """sha256 of a file, None when it does not exist."""
    path = Path(path)
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def member_record(folder: Path, run_dir: Path) -> dict:
    """How an ensemble references a member: its path (relative when inside the ensemble folder) and the checksums
    of what makes it a model."""
    run_dir = Path(run_dir).resolve()
    try:
        where = str(run_dir.relative_to(Path(folder).resolve()))
    except ValueError:
        where = str(run_dir)
    return {"run": where, "best_sha256": checksum(run_dir / BEST), "calibration_sha256": checksum(run_dir / CALIBRATION)}


def member_dirs(folder: Path) -> list[Path]:
    """The member run folders of an ensemble, each checked to be the model it was when the ensemble was made."""
    folder = Path(folder)
    members = read_ensemble(folder)["members"]
    dirs = []
    for k, m in enumerate(members, start=1):
        run = folder / m["run"] if not Path(m["run"]).is_absolute() else Path(m["run"])
        if not is_run_dir(run):
            raise UsageError(f"member {k} of ensemble {folder} ({run}) is missing; restore it or make the ensemble "
                             f"again (`medcolor ensemble`)")
        for what, name in (("best_sha256", BEST), ("calibration_sha256", CALIBRATION)):
            if checksum(run / name) != m[what]:
                raise UsageError(f"member {k} of ensemble {folder} ({run}) changed since the ensemble was made "
                                 f"({name} differs); make the ensemble again (`medcolor ensemble`)")
        dirs.append(run)
    return dirs


def write_ensemble(folder: Path, record: dict) -> None:
    write_json(Path(folder) / ENSEMBLE, record)


def read_ensemble(folder: Path) -> dict:
    data = _read_json(Path(folder) / ENSEMBLE, "ensemble description")
    if not isinstance(data.get("members"), list) or not data["members"]:
        raise UsageError(f"{Path(folder) / ENSEMBLE} names no members; it is not the file medcolor wrote")
    return data


def write_folds(folder: Path, frame) -> None:
    write_csv(Path(folder) / FOLDS, frame)


def read_folds(folder: Path):
    import pandas as pd
    return pd.read_csv(Path(folder) / FOLDS, keep_default_na=False, na_values=[""])


def write_oof(folder: Path, frame) -> None:
    write_csv(Path(folder) / OOF, frame)


def read_oof(folder: Path):
    """(labels, oof_predictions.csv) of a cross-validation folder: path, split, group, fold, <label>, p_<label>."""
    import pandas as pd

    path = Path(folder) / OOF
    if not path.is_file():
        raise UsageError(f"{folder} is not a finished cross-validation folder (no {OOF})")
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
    return labels_of(frame.columns), frame
