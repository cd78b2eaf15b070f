"""`medcolor tune`: choose a recipe's settings on validation with Optuna, never looking at the test split.

Each trial is an ordinary run of the recipe with the space's sampled values (`recipes/spaces/`, `spaces.py`) and
`data.use_test=false`, so no test image is listed, checked or decoded and the run is scored on valid. The objective
is the run's best validation value of its monitor; a fastai callback reports it per epoch to Optuna's MedianPruner
(callbacks.PruneTrial); a seeded TPE sampler proposes the next values. The study lives in an Optuna storage -
SQLite `study.db` in the study folder, or any `--storage` URL that several processes or machines share - so a
study that was stopped continues when the same command runs again. A study folder holds:

    study.db          the Optuna study (unless --storage names another database)
    trials/           each trial's recipe (<recipe>-t<number>.yaml)
    runs/             each trial's run folder, and the runs its recipe starts from
    trials.csv        one row per trial: number, state, value, parameters, epochs, why it stopped, run folder
    best.yaml         the best trial's settings as a recipe to run (with --seeds 3), then to test once
    history.png       Optuna's optimisation history     importance.png   Optuna's parameter importances

A leaf like train.py: only the command line imports it."""
from __future__ import annotations

import contextlib
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..core import runfolder
from ..core.config import Recipe, apply_overrides, format_override as override
from ..data.readers import read_table
from ..core.errors import Interrupted, RunError, UsageError
from ..core.io import atomic_write, info, read_yaml, save_figure, warn, write_csv
from .recipes import load_recipe, resolve_recipe_path
from .spaces import Space, check_space, load_space

STUDY_DB, TRIALS, TRIAL_RECIPES, RUNS = "study.db", "trials.csv", "trials", "runs"
BEST, HISTORY_PLOT, IMPORTANCE_PLOT = "best.yaml", "history.png", "importance.png"
DRIVERS = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary", "pymysql": "pymysql", "MySQLdb": "mysqlclient"}
HEARTBEAT = 60  # seconds: Optuna fails a trial of another machine that stops beating for twice as long


@dataclass
class Study:
    """What a study tunes: the recipe as given with its overrides, the space, and the monitor that scores trials."""

    recipe: str
    overrides: list
    space: Space
    base: Recipe
    folder: Path

    @property
    def monitor(self) -> str:
        from ..tasks.interface import monitor_of

        return monitor_of(self.base)

    @property
    def direction(self) -> str:
        from ..tasks.interface import lower_is_better

        return "minimize" if lower_is_better(self.monitor) else "maximize"

    @property
    def run_overrides(self) -> list:
        return [*self.overrides, "data.use_test=false"]

    @property
    def stem(self) -> str:
        """The recipe's own name, without the '@data' a recipe run on another dataset gets."""
        return self.base.name.split("@")[0]

    def identity(self) -> dict:
        return {"recipe": self.recipe, "overrides": list(self.overrides), "space": self.space.as_dict(),
                "monitor": self.monitor}

    def title(self, trials) -> str:
        states = [t.state.name for t in trials]
        counts = ", ".join(f"{states.count(s)} {w}" for s, w in (("COMPLETE", "finished"), ("PRUNED", "pruned"),
                                                                 ("FAIL", "failed")) if states.count(s))
        return f"{self.base.name}, space {self.space.name}: {len(trials)} trials" + (f" ({counts})" if counts else "")


def tune(recipe: str, overrides=(), space: str = "", n_trials: int = 10, study_dir: str | None = None,
         storage: str | None = None, timeout: float | None = None, seed: int = 0, quiet: bool = False,
         on_trial=None) -> dict:
    """Run `n_trials` new trials of the study (fewer when `timeout` seconds pass), then write trials.csv, best.yaml
    and the plots. `on_trial(row)`: called after each trial of this process with its trials.csv row and the best."""
    if n_trials < 1:
        raise UsageError(f"--trials must be at least 1, got {n_trials}")
    if timeout is not None and timeout <= 0:
        raise UsageError(f"--timeout must be positive seconds, got {timeout}")
    overrides = list(overrides)
    base = load_recipe(recipe, [*overrides, "data.use_test=false"])
    study_space = load_space(space)
    check_space(study_space, recipe, [*overrides, "data.use_test=false"])
    read_table(base.data, ("train", "valid"))  # a wrong root or label fails now, before a study folder is made
    folder = Path(study_dir) if study_dir else Path("studies") / f"{base.name}-{study_space.name}"
    s = Study(recipe, overrides, study_space, base, folder)
    if (folder.exists() and not folder.is_dir()) or (folder.is_dir() and any(folder.iterdir())
                                                       and not is_study_folder(folder, storage)):
        raise UsageError(f"{folder} exists and is not a study folder; give --study a new or a study's folder")
    if base.data.reader in ("chexpert", "mura"):
        warn(f"{base.data.spec}'s test split is its valid split (the official test set is hidden): the test score "
             f"after tuning on it is optimistic - hold out a test set of your own (data.csv with a split column)")
    with created_on_success(folder):
        optuna_storage = open_storage(storage or f"sqlite:///{(folder / STUDY_DB).resolve()}")
        study = open_study(s, optuna_storage, seed)
    fail_dead_trials(study, optuna_storage)
    info(f"study {folder}: {s.title(study.trials)} so far; {n_trials} new trial(s) of {base.name} over "
         f"{', '.join(p.key for p in study_space.params)}, scored by the best validation {s.monitor}")
    try:
        run_trials(s, study, n_trials, timeout, quiet, on_trial)
    except Interrupted as e:
        write_outputs(s, study)
        raise Interrupted(f"{e}; the study keeps its finished trials - run the same command again to continue it",
                          e.exit_code) from None
    return write_outputs(s, study)


def is_study_folder(folder: Path, storage: str | None) -> bool:
    return (folder / STUDY_DB).is_file() or (storage is not None and (folder / RUNS).is_dir())


@contextlib.contextmanager
def created_on_success(folder: Path):
    """Make `folder` for the study; remove it again when opening the study fails (bad input leaves nothing)."""
    made = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create the study folder {folder}: {e.strerror}") from None
    try:
        yield
    except BaseException:
        if made:
            shutil.rmtree(folder, ignore_errors=True)
        raise


def open_storage(url: str):
    """Optuna's RDBStorage (SQLite, PostgreSQL, MySQL) with heartbeats; an unreachable database is one line."""
    import optuna
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        raise UsageError(f"--storage {url!r} is not a database URL (e.g. postgresql://user@host/db, "
                         f"sqlite:///study.db)") from None
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else \
        {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    for attempt in range(3):  # two processes creating one database's tables at once: one waits and retries
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT)
        except ImportError as e:  # Optuna wraps the driver's ModuleNotFoundError
            module = getattr(e.__cause__, "name", None) or e.name or "its driver"
            package = DRIVERS.get(module, module)
            raise UsageError(f"--storage {shown} needs its database driver ({module}): pip install '{package}'") \
                from None
        except Exception as e:  # SQLAlchemy's and the drivers' errors: one line
            racing = any(w in str(e).lower() for w in ("already exists", "duplicate", "locked", "unique constraint"))
            if attempt == 2 or not racing:
                first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
                raise UsageError(f"cannot open the study database {shown}: {first}") from None
            time.sleep(1 + attempt)


def open_study(s: Study, storage, seed: int):
    """The study named after its folder: loaded when it exists (and is the same study), else created."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = s.folder.resolve().name
    try:
        existing = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        existing = None
    if existing is not None and existing.user_attrs.get("medcolor") != s.identity():
        raise UsageError(f"{s.folder} holds another study ({describe(existing.user_attrs.get('medcolor'))}); run the "
                         f"same recipe, overrides and space to continue it, or give --study a new folder")
    n_before = len(existing.trials) if existing is not None else 0
    sampler = optuna.samplers.TPESampler(seed=seed + n_before)  # a continued study does not replay its first draws
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    study = optuna.create_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner,
                                direction=s.direction, load_if_exists=True)
    mark(study, s.identity())
    return study


def mark(study, identity: dict) -> None:
    """The study's `medcolor` attribute. Two processes starting one study both write it, and the database's unique
    key refuses the second insert (Optuna's StorageInternalError): that is fine when the first wrote the same."""
    import json

    import optuna

    identity = json.loads(json.dumps(identity))  # as the database gives it back (tuples become lists)
    if study.user_attrs.get("medcolor") == identity:
        return
    try:
        study.set_user_attr("medcolor", identity)
    except optuna.exceptions.StorageInternalError:
        if study.user_attrs.get("medcolor") != identity:
            raise


def describe(identity) -> str:
    if not isinstance(identity, dict):
        return "not made by medcolor tune"
    return f"recipe {identity.get('recipe')} {' '.join(identity.get('overrides') or [])}, space " \
           f"{', '.join(identity.get('space') or {})}".replace("  ", " ")


def fail_dead_trials(study, storage) -> None:
    """A trial left running by a process of this machine that is gone (kill -9, a power cut) is failed now and its
    run folder named as stopped; other machines' trials are failed by Optuna's heartbeat check."""
    from optuna.trial import TrialState

    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = {"host": trial.user_attrs.get("host"), "pid": trial.user_attrs.get("pid")}
        if owner["host"] is None or runfolder.process_alive(owner):
            continue
        storage.set_trial_user_attr(trial._trial_id, "stopped", f"its process {owner['pid']} was killed")
        storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)  # what Optuna's fail_stale_trials does
        folder = trial.user_attrs.get("runs_folder")
        stopped = runfolder.stale_runs(Path(folder).parent, Path(folder).name) if folder else []
        info(f"note: trial {trial.number} was stopped (its process {owner['pid']} is gone): marked failed"
             + (f"; its run folder {stopped[0]} was stopped before it finished" if stopped else ""))


def run_trials(s: Study, study, n_trials: int, timeout: float | None, quiet: bool, on_trial) -> None:
    import optuna

    def after(study, frozen):
        if on_trial:
            on_trial(trial_row(s, frozen), best_of(study))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.optimize(lambda trial: objective(s, trial, quiet), n_trials=n_trials, timeout=timeout,
                       catch=(RunError,), callbacks=[after])


def objective(s: Study, trial, quiet: bool) -> float:
    """One trial: a run of the recipe with the sampled values, scored by its best validation monitor value."""
    import optuna

    from .callbacks import PruneTrial
    from .chains import shared_with_parent
    from .train import best_key, run_recipe

    for key, value in runfolder.this_process().items():
        trial.set_user_attr(key, value)
    params = {p.key: p.suggest(trial) for p in s.space.params}
    path = write_trial_recipe(s, params, f"{s.stem}-t{trial.number}")
    overrides = s.run_overrides + [override(k, v) for k, v in params.items() if shared_with_parent(k)]
    runs_dir = s.folder / RUNS
    trial.set_user_attr("runs_folder", str(runs_dir / load_recipe(str(path), overrides).name))
    pruning = PruneTrial(trial)
    try:
        result = run_recipe(str(path), overrides, runs_dir=runs_dir, quiet=quiet, existing=lambda: None,
                            callbacks=[pruning])[0]
    except RunError as e:
        trial.set_user_attr("error", str(e))
        raise
    trial.set_user_attr("run_dir", result["run_dir"])
    trial.set_user_attr("epochs", result["epochs_trained"])
    if result.get("stopped_early"):
        trial.set_user_attr("stopped", f"after epoch {result['stopped_early']['epoch']}: "
                                       f"{result['stopped_early']['why']}")
    if pruning.stopped:
        raise optuna.TrialPruned(pruning.stopped["why"])
    return float(result[best_key(s.monitor)])


def write_trial_recipe(s: Study, params: dict, name: str) -> Path:
    """The recipe file as written, with the sampled values and the trial's name: a recipe anyone can run again."""
    folder = s.folder / TRIAL_RECIPES
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.yaml"
    header = f"# trial of study {s.folder} (medcolor tune {s.recipe} --space {s.space.name}): " \
             f"{' '.join(override(k, v) for k, v in params.items())}\n"
    atomic_write(path, header + recipe_text(s, params, name, f"{s.base.description} [tuning trial]"))
    return path


def recipe_text(s: Study, params: dict, name: str, description: str) -> str:
    written = read_yaml(resolve_recipe_path(s.recipe), "recipe")
    raw = apply_overrides(written, [override(k, v) for k, v in params.items()], schema=Recipe)
    raw = {"name": name, "description": description, **{k: v for k, v in raw.items() if k not in ("name",
                                                                                                "description")}}
    return yaml.safe_dump(raw, sort_keys=False)


def best_of(study):
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        return None
    return min(done, key=lambda t: t.value) if study.direction.name == "MINIMIZE" else max(done, key=lambda t: t.value)


def trial_row(s: Study, t) -> dict:
    """A trials.csv row: what was tried and how it ended."""
    seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start \
        else None
    return {"number": t.number, "state": t.state.name.lower(), f"valid_{s.monitor}".replace("valid_valid_", "valid_"):
            t.value if t.value is not None else (max(t.intermediate_values.values(), default=None)
                                                 if s.direction == "maximize" else
                                                 min(t.intermediate_values.values(), default=None)),
            **{k: t.params.get(k) for k in (p.key for p in s.space.params)},
            "epochs": t.user_attrs.get("epochs"), "stopped": t.user_attrs.get("stopped", ""),
            "error": t.user_attrs.get("error", ""), "seconds": round(seconds, 1) if seconds is not None else None,
            "run_dir": t.user_attrs.get("run_dir", ""), "host": t.user_attrs.get("host", "")}


def write_outputs(s: Study, study) -> dict:
    """trials.csv, the two plots and best.yaml from the whole study (every process's trials)."""
    import pandas as pd

    trials = study.get_trials(deepcopy=False)
    write_csv(s.folder / TRIALS, pd.DataFrame([trial_row(s, t) for t in trials]))
    plot_study(s, study, trials)
    best = best_of(study)
    files = [TRIALS, HISTORY_PLOT, IMPORTANCE_PLOT]
    result = {"study": str(s.folder), "trials": len(trials), "monitor": s.monitor, "direction": s.direction}
    if best is not None:
        write_best(s, best, len(trials))
        files.append(BEST)
        result.update(best_trial=best.number, best_value=best.value, best_params=best.params,
                      best_run=best.user_attrs.get("run_dir"))
    return {**result, "files": files, "next": next_step(s) if best is not None else
            "no trial finished: look at trials.csv (error, stopped) and run tune again"}


def write_best(s: Study, best, n_trials: int) -> None:
    header = (f"# {next_step(s)}\n# chosen by medcolor tune on validation only: study {s.folder}, recipe {s.recipe}, "
              f"space {s.space.name}, {n_trials} trials; best trial {best.number}: valid {s.monitor} "
              f"{best.value:.4f}\n")
    description = f"{s.base.description} [tuned on validation: study {s.folder.name}, trial {best.number}]"
    atomic_write(s.folder / BEST, header + recipe_text(s, best.params, f"{s.stem}-tuned", description))


def next_step(s: Study) -> str:
    overrides = " ".join(s.overrides)
    return (f"next: medcolor run recipe {s.folder / BEST}{' ' + overrides if overrides else ''} --seeds 3, then "
            f"evaluate those runs on the test split once (medcolor report / evaluate)")


def plot_study(s: Study, study, trials) -> None:
    """Optuna's own matplotlib figures, titled with what the study tuned."""
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as ovm

    title = s.title(trials)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        history = ovm.plot_optimization_history(study, target_name=f"valid {s.monitor}")
        titled(history, f"optimisation history of the best validation {s.monitor} (pruned trials not shown)\n{title}")
        save_figure(history.figure, s.folder / HISTORY_PLOT)
        try:
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
            importance = ovm.plot_param_importances(study, evaluator=evaluator)
            titled(importance, f"parameter importance (Optuna's fANOVA) for the best validation {s.monitor}\n{title}")
            fig = importance.figure
        except (ValueError, RuntimeError) as e:  # fewer than two finished trials, or nothing varied
            fig, ax = plt.subplots(figsize=(7, 3))
            ax.axis("off")
            ax.text(0.5, 0.5, f"no parameter importance yet: {str(e).splitlines()[0][:120]}", ha="center", fontsize=9,
                    wrap=True)
            ax.set_title(f"parameter importance: {title}", fontsize=9)
        save_figure(fig, s.folder / IMPORTANCE_PLOT)


def titled(ax, title: str) -> None:
    """Our title in place of Optuna's (it sets one on the left of some figures)."""
    for loc in ("left", "center"):
        ax.set_title("", loc=loc)
    ax.figure.suptitle(title, fontsize=9)
    ax.figure.tight_layout()


def format_trial(row: dict, best) -> str:
    """One line per finished trial: number, parameters, score and the best so far."""
    value_key = next(k for k in row if k.startswith("valid_"))
    params = " ".join(f"{k}={_short(v)}" for k, v in row.items() if "." in k)
    value = row[value_key]
    score = f"{value_key} {value:.4f}" if value is not None else "no score"
    end = {"complete": score, "pruned": f"pruned ({score}, {row['stopped']})",
           "fail": f"failed: {row['error'] or row['stopped']}"}.get(row["state"], row["state"])
    so_far = f"best so far {best.value:.4f} (trial {best.number})" if best is not None else "no trial finished yet"
    return f"trial {row['number']}: {params} -> {end}; {so_far}"


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
