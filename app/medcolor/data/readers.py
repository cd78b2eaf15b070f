"""One reader per dataset layout. Each turns a DataConfig into a `Table`: one row per image with an absolute
`path`, a `split` (train / valid / test), a `group` (patient or study) and one float column per label.
Readers touch only label tables and folder listings, never image contents."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..core._resources import resolve_package_path
from ..core.config import DataConfig
from ..core.errors import UsageError
from ..core.registry import Registry
from ..core.io import warn
from .folds import pool_splits, with_fold
from .policies import apply_policy, check_values

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".dicom"}


def is_image_file(path: Path) -> bool:
    """An image by its extension, or an extension-less DICOM file (as PACS exports write them)."""
    from .dicom import is_dicom

    return path.suffix.lower() in IMAGE_EXTS or (not path.suffix and is_dicom(path))
NIH_FINDINGS = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
                "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia"]
NIH_THESIS5 = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion"]
ANY_FINDING = "Any finding"


@dataclass
class Table:
    df: pd.DataFrame
    labels: list[str]
    single_label: bool = False
    unsplit_reason: str = ""  # set when the split files are missing: every row has split "unsplit"
    split_counts: dict = field(default_factory=dict)  # images per split the reader found, before read_table keeps some
    test_is_valid: bool = False  # the test split is the valid split again (CheXpert's and MURA's tests are hidden)
    about: str = ""  # what the reader knows of the dataset beyond its table (MedMNIST: name, size, task)

    def split(self, name: str) -> pd.DataFrame:
        return self.df[self.df["split"] == name]

    def eval_split(self) -> str:
        """Where a finished run is scored: the test split, or valid for datasets without one."""
        return "test" if (self.df["split"] == "test").any() else "valid"


@dataclass(frozen=True)
class Reader:
    read: Callable             # (DataConfig, splits) -> Table
    groups: str                # what its `group` column holds: what patient-grouped splits and bootstraps resample
    fields: tuple[str, ...]    # the layout-specific DataConfig fields it reads


READERS: Registry[Reader] = Registry("data.reader")
UNREAD_FIELDS = ("test_csv",)  # in DataConfig for layouts to come; no reader reads it yet


def reader(name, groups: str = "images", fields=()):
    def deco(fn):
        READERS.register(name, Reader(fn, groups, tuple(fields)))
        return fn
    return deco


def layout_fields() -> set[str]:
    """DataConfig fields only some layouts read; one set for a layout that ignores it is refused, because a setting
    that is written into recipe.yaml and silently ignored gives results under a wrong name."""
    return {f for entry in READERS.values() for f in entry.fields} | set(UNREAD_FIELDS)


def reads(reader_name: str, field_name: str) -> bool:
    """Whether data.reader `reader_name` reads data field `field_name` (every reader reads the common ones)."""
    entry = READERS.find(reader_name)
    return field_name not in layout_fields() or (entry is not None and field_name in entry.fields)


def group_unit(reader_name: str) -> str:
    entry = READERS.find(reader_name)
    return entry.groups if entry else "images"


def read_table(cfg: DataConfig, splits=("train", "valid", "test"), allow_unsplit: bool = False) -> Table:
    """The table of `splits`; with allow_unsplit (counting only), a table without split files keeps all its rows."""
    table = READERS.get(cfg.reader).read(cfg, set(splits))
    table.split_counts = {k: int(v) for k, v in table.df["split"].value_counts().sort_index().items()}
    if table.unsplit_reason:
        if not allow_unsplit:
            raise UsageError(table.unsplit_reason)
        return table
    table.df = subset_of_train(table.df[table.df["split"].isin(splits)], cfg).reset_index(drop=True)
    if cfg.folds and set(pool_splits(table.test_is_valid)) <= set(splits):
        table.df = with_fold(table.df, table.labels, table.single_label, cfg.folds, cfg.fold, cfg.fold_seed,
                             table.test_is_valid)
    for name in splits:
        if name in ("train", "valid") and not (table.df["split"] == name).any():
            raise UsageError(f"the {name} split of data spec {cfg.spec!r} is empty; check data.root, the label "
                             f"table and filters (frontal_only, body_part, subset, valid_pct)")
    return table


def subset_of_train(df: pd.DataFrame, cfg: DataConfig) -> pd.DataFrame:
    """data.subset: a seeded `fraction` of the training rows, drawn as the CheXpert reader draws its training table
    (pandas' sample(frac, random_state)), for every layout; CheXpert's reader samples before its filters' output
    reaches here, exactly as the thesis did."""
    if cfg.subset.fraction >= 1.0 or cfg.reader == "chexpert":
        return df
    train = df[df["split"] == "train"]
    kept = train.sample(frac=cfg.subset.fraction, random_state=cfg.subset.seed)
    return df.drop(index=train.index.difference(kept.index))


# ---- shared helpers -------------------------------------------------------------------------------------

def data_root(cfg: DataConfig) -> Path:
    if not cfg.root and cfg.csv:  # a label table given alone sits in its dataset's folder
        table = Path(cfg.csv).expanduser()
        if table.is_file():
            return table.resolve().parent
        if table.parent != Path("."):  # a path the user gave, not the spec's default file name
            raise UsageError(f"label table {table} does not exist; give the path of the {cfg.spec} label table "
                             f"(--csv), or the dataset folder (--root)")
    if not cfg.root:
        raise UsageError(f"data spec {cfg.spec!r} needs a dataset folder: pass --root DIR or data.root=DIR")
    root = resolve_package_path(cfg.root)
    if not root.is_dir():
        raise UsageError(f"data.root {root} is not a folder; point it at the {cfg.spec} dataset")
    return root


def read_csv(path: Path, what: str, **kwargs) -> pd.DataFrame:
    if path.is_dir():
        raise UsageError(f"{what} {path} is a folder; give the table file (data.csv / --csv)")
    if not path.is_file():
        raise UsageError(f"{what} {path} does not exist; check data.root / --csv")
    try:
        return pd.read_csv(path, **kwargs)
    except UnicodeDecodeError as e:
        raise UsageError(f"{what} {path} is not UTF-8 text (byte {e.start} of it); save it as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise UsageError(f"{what} {path} is empty; it needs a header line and one row per image") from None
    except pd.errors.ParserError as e:
        raise UsageError(f"{what} {path} is not a valid CSV table: {str(e).splitlines()[0][:150]}") from None


def table_path(root: Path, name: str | None, default: str) -> Path:
    p = Path(name or default).expanduser()
    return p if p.is_absolute() else root / p


def require_columns(df: pd.DataFrame, columns, table: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise UsageError(f"{table} is missing columns {missing}; it has {list(df.columns)[:12]}")


def join_paths(base: Path, rel: pd.Series, cfg: DataConfig, inside: Path, table: str) -> pd.Series:
    """base / rel for every row, refusing empty paths and paths that escape `inside` (absolute or '..') unless
    allowed."""
    empty = rel.isna() | (rel.astype(str).str.strip() == "")
    if empty.any():
        rows = ", ".join(str(i + 2) for i in np.flatnonzero(empty.to_numpy())[:5])  # +2: header, 1-based lines
        n = int(empty.sum())
        raise UsageError(f"{table}: {n} {'rows have' if n > 1 else 'row has'} no image path (line{'s' * (n > 1)} "
                         f"{rows}); fill or remove {'them' if n > 1 else 'it'}")
    rel = rel.astype(str)
    absolute = rel.str.startswith("/") | rel.str.match(r"^[A-Za-z]:[\\/]")
    escapes = rel.str.contains(r"(?:^|[\\/])\.\.(?:[\\/]|$)")
    if cfg.allow_absolute_paths:
        escapes &= ~absolute
        out = rel.where(absolute, str(base) + os.sep + rel)
    else:
        escapes |= absolute
        out = str(base) + os.sep + rel
    if escapes.any():
        first = rel[escapes].iloc[0]
        raise UsageError(f"{table}: {int(escapes.sum())} image paths point outside {inside} (first: {first!r}); "
                         f"use paths relative to the dataset, or set data.allow_absolute_paths=true for absolute ones")
    return out


def images_inside(cfg: DataConfig, paths) -> None:
    """Before any image of a table is opened: every path, resolved, lies inside data.root (unless the user allowed
    absolute paths). `data summary` reads only the table and does not need this."""
    if not cfg.allow_absolute_paths:
        require_inside(paths, data_root(cfg))


def require_inside(paths, root: Path) -> None:
    """Every path, resolved (symbolic links followed), stays inside `root`: links within the dataset are fine,
    links out of it are refused. One realpath per folder and one lstat per file, so 224,000 rows stay cheap."""
    prefix = os.path.join(os.path.realpath(root), "")
    folders, outside = {}, []
    for path in paths:
        folder, name = os.path.split(path)
        if folder not in folders:
            folders[folder] = os.path.realpath(folder)
        real = os.path.realpath(path) if os.path.islink(path) else os.path.join(folders[folder], name)
        if not real.startswith(prefix):
            outside.append((path, real))
    if outside:
        (path, real), n = outside[0], len(outside)
        how = f"through symbolic links (first: {path} -> {real})" if real != os.path.normpath(path) else \
            f"(first: {path}; CheXpert and MURA paths start with the dataset folder's own name - is data.root that " \
            f"folder?)"
        raise UsageError(f"{n} image path{'s' * (n > 1)} lead{'s' * (n == 1)} outside {root} {how}; medcolor reads "
                         f"only inside the dataset folder")


def patient_split(groups: pd.Series, valid_pct: float, seed: int) -> pd.Series:
    """'valid' for a seeded random `valid_pct` share of the groups (patients), 'train' for the rest."""
    unique = np.array(sorted(groups.unique()))
    rng = np.random.default_rng(seed)
    n_valid = max(1, int(round(len(unique) * valid_pct))) if valid_pct > 0 else 0
    valid = set(rng.permutation(unique)[:n_valid])
    return groups.map(lambda g: "valid" if g in valid else "train")


def resolve_labels(requested, known: list[str], named_sets: dict[str, list[str]], spec: str) -> list[str]:
    labels = named_sets.get(requested, requested) if isinstance(requested, str) else requested
    if isinstance(labels, str):
        labels = [labels]
    unknown = [lab for lab in labels if lab not in known]
    if unknown:
        raise UsageError(f"unknown labels {unknown} for data spec {spec!r}; known: {', '.join(known)}"
                         + (f" (or {', '.join(named_sets)})" if named_sets else ""))
    return list(labels)


# ---- CheXpert ---------------------------------------------------------------------------------------------

@reader("chexpert", groups="patients", fields=("frontal_only", "policy", "policy_map", "valid_csv", "labels", "csv",
                                                "allow_absolute_paths"))
def read_chexpert(cfg: DataConfig, splits: set) -> Table:
    root = data_root(cfg)
    labels = resolve_labels(cfg.labels or [], CHEXPERT_LABELS, {}, cfg.spec)
    parts = []
    if "train" in splits:
        parts.append(_chexpert_csv(root, table_path(root, cfg.csv, "train.csv"), labels, cfg, "train", subset=True))
    if splits & {"valid", "test"}:
        valid = _chexpert_csv(root, table_path(root, cfg.valid_csv, "valid.csv"), labels, cfg, "valid")
        parts += [valid, valid.assign(split="test")]  # the official test set is not public: test = valid
    return Table(pd.concat(parts, ignore_index=True), labels, test_is_valid=True)


CHEXPERT_LABELS = ["No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion",
                   "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
                   "Pleural Other", "Fracture", "Support Devices"]


def _chexpert_csv(root: Path, path: Path, labels, cfg: DataConfig, split: str, subset: bool = False):
    df = read_csv(path, "CheXpert table")
    require_columns(df, ["Path", *labels, *(["Frontal/Lateral"] if cfg.frontal_only else [])], str(path))
    if cfg.frontal_only:
        df = df[df["Frontal/Lateral"] == "Frontal"]
    if subset and cfg.subset.fraction < 1.0:
        # Exactly the thesis's selection: pandas' sample on the (filtered) training table.
        df = df.sample(frac=cfg.subset.fraction, random_state=cfg.subset.seed)
    check_values(df, labels, str(path))
    df = apply_policy(df, labels, cfg.policy, cfg.policy_map)
    out = pd.DataFrame({"path": join_paths(root.parent, df["Path"], cfg, root, str(path)).to_numpy(),
                        "split": split, "group": df["Path"].str.split("/").str[2].to_numpy()})
    for label in labels:
        out[label] = df[label].to_numpy()
    return out


# ---- ChestX-ray14 -----------------------------------------------------------------------------------------

@reader("chestxray14", groups="patients", fields=("any_finding", "labels", "valid_pct", "split_seed", "csv",
                                                   "allow_absolute_paths"))
def read_chestxray14(cfg: DataConfig, splits: set) -> Table:
    root = data_root(cfg)
    path = table_path(root, cfg.csv, "Data_Entry_2017.csv")
    df = read_csv(path, "ChestX-ray14 label table")
    require_columns(df, ["Image Index", "Finding Labels", "Patient ID"], str(path))
    labels = resolve_labels(cfg.labels or "thesis5", NIH_FINDINGS + [ANY_FINDING],
                            {"thesis5": NIH_THESIS5, "all14": NIH_FINDINGS}, cfg.spec)
    if cfg.any_finding and ANY_FINDING not in labels:
        labels.append(ANY_FINDING)
    findings = df["Finding Labels"].fillna("No Finding").str.split("|")
    out = pd.DataFrame({"path": join_paths(root / "images", df["Image Index"], cfg, root, str(path)),
                        "group": df["Patient ID"].astype(str)})
    for label in labels:
        hit = findings.map(lambda f: f != ["No Finding"]) if label == ANY_FINDING else findings.map(lambda f, lab=label: lab in f)
        out[label] = hit.astype("float32")
    lists = [root / "test_list.txt", root / "train_val_list.txt"]
    missing = [p for p in lists if not p.is_file()]
    if missing:  # enough to count labels, not to train
        return Table(out.assign(split="unsplit"), labels, unsplit_reason=(
            f"ChestX-ray14 split file {missing[0]} does not exist (the official train_val_list.txt and "
            f"test_list.txt belong next to {path.name}); they are needed to train and evaluate"))
    test_names, train_names = (set(p.read_text().split()) for p in lists)
    train = out[df["Image Index"].isin(train_names).to_numpy()]
    train = train.assign(split=patient_split(train["group"], cfg.valid_pct, cfg.split_seed))
    test = out[df["Image Index"].isin(test_names).to_numpy()].assign(split="test")
    return Table(pd.concat([train, test]).sort_index(kind="stable").reset_index(drop=True), labels)  # an image
    # on both lists stays on both: leakage checks name it


# ---- MURA ---------------------------------------------------------------------------------------------------

@reader("mura", groups="studies", fields=("body_part", "valid_csv", "csv", "allow_absolute_paths"))
def read_mura(cfg: DataConfig, splits: set) -> Table:
    root = data_root(cfg)
    parts = []
    if "train" in splits:
        parts.append(_mura_csv(root, table_path(root, cfg.csv, "train_image_paths.csv"), cfg, "train"))
    if splits & {"valid", "test"}:
        valid = _mura_csv(root, table_path(root, cfg.valid_csv, "valid_image_paths.csv"), cfg, "valid")
        parts += [valid, valid.assign(split="test")]  # MURA's test set is hidden: test = official valid
    return Table(pd.concat(parts, ignore_index=True), ["Abnormal"], test_is_valid=True)


def _mura_csv(root: Path, path: Path, cfg: DataConfig, split: str) -> pd.DataFrame:
    rel = read_csv(path, "MURA image list", header=None)[0].astype(str)
    if cfg.body_part != "all":
        rel = rel[rel.str.split("/").str[2] == cfg.body_part]
    study = rel.str.rsplit("/", n=1).str[0]
    if not study.str.endswith(("_positive", "_negative")).all():
        raise UsageError(f"{path}: study folders must end in _positive or _negative (MURA-v1.1 layout)")
    return pd.DataFrame({"path": join_paths(root.parent, rel, cfg, root, str(path)).to_numpy(), "split": split,
                         "group": study.to_numpy(),
                         "Abnormal": study.str.endswith("_positive").astype("float32").to_numpy()})


# ---- folders and generic CSV ----------------------------------------------------------------------------------

SPLIT_DIRS = {"train": "train", "valid": "valid", "val": "valid", "test": "test"}


@reader("folder", fields=("valid_pct", "split_seed"))
def read_folder(cfg: DataConfig, splits: set) -> Table:
    root = data_root(cfg)
    split_layout = (root / "train").is_dir()
    try:
        rows = _folder_rows(root, split_layout)
    except OSError as e:  # e.g. --root / reaches /proc
        where = f" at {e.filename}" if e.filename else ""
        raise UsageError(f"cannot list the images under {root} ({e.strerror}{where}); point --root at the dataset "
                         f"folder") from None
    if not rows:
        raise UsageError(f"no images under {root}; expected root/<class>/*.png or root/<train|valid>/<class>/*.png")
    df = pd.DataFrame(rows, columns=["path", "split", "class"])
    require_inside(df["path"], root)
    df["group"] = df["path"]
    if not split_layout:
        df["split"] = patient_split(df["group"], cfg.valid_pct, cfg.split_seed)
    labels = sorted(df["class"].unique())
    for label in labels:
        df[label] = (df["class"] == label).astype("float32")
    return Table(df.drop(columns="class"), labels, single_label=True)


def _folder_rows(root: Path, split_layout: bool) -> list[tuple[str, str, str]]:
    rows = []
    for split_dir in (sorted(d for d in root.iterdir() if d.name in SPLIT_DIRS) if split_layout else [root]):
        for class_dir in sorted(d for d in split_dir.iterdir() if d.is_dir()):
            for f in sorted(class_dir.rglob("*")):
                if is_image_file(f):
                    rows.append((str(f), SPLIT_DIRS.get(split_dir.name, "train"), class_dir.name))
    return rows


@reader("csv", fields=("policy", "policy_map", "labels", "path_col", "split_col", "valid_pct", "split_seed", "csv",
                       "allow_absolute_paths"))
def read_generic_csv(cfg: DataConfig, splits: set) -> Table:
    root = data_root(cfg)
    path = table_path(root, cfg.csv, "labels.csv")
    df = read_csv(path, "label table")
    require_columns(df, [cfg.path_col, *([cfg.split_col] if cfg.split_col else [])], str(path))
    labels = cfg.labels if isinstance(cfg.labels, list) else [cfg.labels] if cfg.labels else \
        [c for c in df.columns if c not in (cfg.path_col, cfg.split_col)]
    if isinstance(cfg.labels, str) and cfg.labels not in df.columns:
        raise UsageError(f"data.labels is {cfg.labels!r} (a recipe's label-set name?), not a column of {path}; a csv "
                         f"table takes its own columns: data.labels=[...] or data.labels=null for all of "
                         f"{[c for c in df.columns if c not in (cfg.path_col, cfg.split_col)]}")
    require_columns(df, labels, str(path))
    check_values(df, labels, str(path))
    df = apply_policy(df, labels, cfg.policy, cfg.policy_map)
    out = pd.DataFrame({"path": join_paths(root, df[cfg.path_col], cfg, root, str(path)),
                        "group": df[cfg.path_col].astype(str)})
    if cfg.split_col:
        out["split"] = df[cfg.split_col].astype(str).str.lower().map(SPLIT_DIRS)
        if out["split"].isna().any():
            raise UsageError(f"{path}: column {cfg.split_col!r} must hold train, valid (val) or test")
    else:
        out["split"] = patient_split(out["group"], cfg.valid_pct, cfg.split_seed)
    for label in labels:
        out[label] = df[label].to_numpy()
    return Table(out, list(labels))


# ---- MedMNIST ---------------------------------------------------------------------------------------------------

@reader("medmnist", fields=("name", "size", "as_rgb"))
def read_medmnist(cfg: DataConfig, splits: set) -> Table:
    """The official train / val / test splits of one MedMNIST file; binary and multi-class (ordinal grades too)
    are one class per image, ChestMNIST's 14 findings independent labels. Images keep their index in the file."""
    from . import medmnist

    try:
        root = data_root(cfg)
    except UsageError:  # the same check, said for files no one downloads by hand
        raise UsageError(f"data.root {cfg.root} is not a folder; MedMNIST files are read where the medmnist package "
                         f"downloaded them (~/.medmnist) or from data.root=DIR - medcolor does not download them") \
            from None
    npz = medmnist.npz_path(root, cfg.name or "", cfg.size)
    counts = medmnist.check_npz(npz, cfg.name, cfg.size)
    task, channels, names = medmnist.DATASETS[cfg.name]
    parts = []
    for split in ("train", "valid", "test"):  # all three: their sizes come from the file's headers
        members = [f"{npz}/{split}/{i}" for i in range(counts[split])]
        y = medmnist.labels(npz, split).astype(np.float32)
        if task != "multi-label":
            if y.min(initial=0) < 0 or y.max(initial=0) >= len(names):
                raise UsageError(f"{npz}: {medmnist.SPLIT_KEYS[split]}_labels holds classes outside 0-{len(names) - 1} "
                                 f"({cfg.name} has {len(names)})")
            y = np.eye(len(names), dtype=np.float32)[y[:, 0].astype(int)]
        part = pd.DataFrame(y, columns=names)
        parts.append(part.assign(path=members, split=split, group=members)[["path", "split", "group", *names]])
    about = f"{cfg.name} at {cfg.size} px, {task}, " + ("gray" if channels == 1 else "RGB")
    return Table(pd.concat(parts, ignore_index=True), list(names), single_label=task != "multi-label", about=about)


# ---- IXI brain MRI (reconstruction) ---------------------------------------------------------------------------

def parse_slices(text: str) -> tuple[int, int]:
    try:
        lo, hi = (int(x) for x in text.split(":"))
    except ValueError:
        raise UsageError(f"data.slices must look like 50:110, got {text!r}") from None
    if not 0 <= lo < hi:
        raise UsageError(f"data.slices {text}: need 0 <= start < stop")
    return lo, hi


@reader("ixi", groups="subjects", fields=("valid_pct", "split_seed", "slices", "test_pct", "csv"))
def read_ixi(cfg: DataConfig, splits: set) -> Table:
    import nibabel as nib

    root = data_root(cfg)
    volumes = sorted(p for p in root.rglob("*") if p.name.endswith((".nii", ".nii.gz")))
    if not volumes:
        raise UsageError(f"no NIfTI volumes (*.nii, *.nii.gz) under {root}")
    require_inside([str(v) for v in volumes], root)
    lo, hi = parse_slices(cfg.slices)
    rows = []
    for vol in volumes:
        try:
            depth = nib.load(str(vol)).shape[-1]
        except Exception as e:  # nibabel raises several types for a broken header
            raise UsageError(f"cannot read NIfTI volume {vol}: {str(e).splitlines()[0][:150]}") from None
        if hi > depth:
            raise UsageError(f"data.slices {cfg.slices} goes beyond {vol.name}, which has {depth} slices along its "
                             f"last axis; choose a range within 0:{depth}")
        subject = _ixi_subject(vol.name)
        rows += [(str(vol), k, subject) for k in range(lo, hi)]
    df = pd.DataFrame(rows, columns=["path", "slice", "group"])
    df["split"] = df["group"].map(subject_split(sorted(df["group"].unique()), _demographics(root, cfg), cfg))
    return Table(df, [], single_label=False)


def _ixi_subject(name: str) -> str:
    import re
    m = re.match(r"(IXI\d+)", name)
    return m.group(1) if m else name.split(".")[0]


def _demographics(root: Path, cfg: DataConfig) -> pd.DataFrame | None:
    """Optional table with IXI_ID and SEX_ID (and ETHNIC_ID) columns, as in IXI.xls saved as CSV."""
    if not cfg.csv:
        return None
    path = table_path(root, cfg.csv, "IXI.csv")
    if not path.is_file():
        return None
    df = read_csv(path, "IXI demographics table")
    cols = {c.split(" ")[0]: c for c in df.columns}
    if "IXI_ID" not in cols:
        raise UsageError(f"{path} is missing the IXI_ID column; it has {list(df.columns)[:8]}")
    keep = [cols[c] for c in ("SEX_ID", "ETHNIC_ID") if c in cols]
    out = df[keep].copy()
    out.index = df[cols["IXI_ID"]].map(lambda i: f"IXI{int(i):03d}")
    repeated = out.index[out.index.duplicated()].unique().tolist()
    if repeated:  # the real IXI.xls lists some subjects twice (e.g. 512, 513, 523)
        warn(f"{path.name} lists {len(repeated)} subject IDs more than once ({', '.join(repeated[:5])}"
             f"{', ...' if len(repeated) > 5 else ''}); keeping the first row of each")
        out = out[~out.index.duplicated()]
    return out


def subject_split(subjects: list[str], demo: pd.DataFrame | None, cfg: DataConfig) -> dict[str, str]:
    """train / valid / test per subject, stratified by sex and ethnicity when known, else a seeded random split.
    Subjects the demographics table does not list go to training, as in the source's split."""
    from sklearn.model_selection import train_test_split

    unknown = [s for s in subjects if demo is not None and s not in demo.index]
    subjects = [s for s in subjects if s not in unknown]
    if cfg.valid_pct + cfg.test_pct <= 0 or len(subjects) < 3:
        return {s: "train" for s in subjects + unknown}
    strata = ["-".join(map(str, demo.loc[s].tolist())) for s in subjects] if demo is not None else None

    def cut(items, strat, share):
        try:
            return train_test_split(items, test_size=share, random_state=cfg.split_seed, stratify=strat)
        except ValueError:  # a stratum too small to split: a seeded random split instead
            return train_test_split(items, test_size=share, random_state=cfg.split_seed)

    idx = list(range(len(subjects)))
    rest, test = cut(idx, strata, cfg.test_pct) if cfg.test_pct > 0 else (idx, [])
    rest_strata = [strata[i] for i in rest] if strata else None
    train, valid = cut(rest, rest_strata, cfg.valid_pct / (1 - cfg.test_pct)) if cfg.valid_pct > 0 else (rest, [])
    names = {**{i: "train" for i in train}, **{i: "valid" for i in valid}, **{i: "test" for i in test}}
    return {**{subjects[i]: split for i, split in names.items()}, **{s: "train" for s in unknown}}
