"""Reading and writing files: atomic writes (tmp + fsync + rename), JSON / CSV, the one torch.load of checkpoints,
names that never overwrite, and the two ways medcolor talks on stderr (`info`, `warn`)."""
from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

from .errors import MedcolorError, RunError, UsageError


def info(message: str) -> None:
    """A progress line on stderr (stdout is kept for results and --json)."""
    print(message, file=sys.stderr, flush=True)


def warn(message: str) -> None:
    """Something the user should know but that does not stop the work; the CLI prints it once as `warning: ...`."""
    warnings.warn(message, stacklevel=2)


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write to a temporary file in the same folder, fsync, then rename: readers never see half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; run folders are shared with colleagues
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and not e.filename:  # a write into a full disk names no file: name it
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_torch_save(obj, path: Path) -> None:
    import io
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write(path, buf.getvalue())


def strict_json(obj):
    """NaN and infinities become null: metrics.json stays valid JSON for every reader."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    return obj


def write_json(path: Path, obj) -> None:
    atomic_write(path, json.dumps(strict_json(obj), indent=2, allow_nan=False) + "\n")


def write_csv(path: Path, df) -> None:
    atomic_write(path, df.to_csv(index=False))


def save_figure(fig, path: Path) -> None:
    import io
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write(path, buf.getvalue())


def read_yaml(path: Path, what: str = "file") -> dict:
    """A YAML mapping read with safe_load (no Python tags); a syntax error is one line naming the file."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise UsageError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not a text (UTF-8) YAML file") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a folder, not a YAML file") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} must hold a mapping of {what} fields")
    return data


def load_tensors(path: Path, what: str = "checkpoint"):
    """torch.load(weights_only=True): plain tensors and containers, never pickled code. The one reader of
    checkpoints and weight files; a broken or foreign file is one line naming it."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{what} {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch and safetensors raise many types for truncated or foreign files
        reason = "the file is empty" if path.stat().st_size == 0 else TRUNCATED if _cut_zip(path) else \
            _first_line(e, path)
        raise UsageError(f"cannot read {what} {path}: {reason}") from None


TRUNCATED = "the file is truncated or damaged (an interrupted copy or save?)"


def _cut_zip(path: Path) -> bool:
    """A torch checkpoint (a zip archive) whose end, with the archive's directory, is missing."""
    import zipfile

    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04" and not zipfile.is_zipfile(path)


FOREIGN = "it is neither a PyTorch (.pth / .pt / .bin) nor a safetensors weights file"


def _first_line(e: Exception, path: Path | None = None) -> str:
    text = str(e).strip()
    if path is not None and path.suffix == ".safetensors":
        return "it is not a safetensors file (its header does not parse)"
    if isinstance(e, (EOFError, KeyError, IndexError)) or len(text) < 12 or "invalid load key" in text:
        return FOREIGN
    if "weights_only" in text or "Unsupported global" in text or "pickle" in text.lower():
        return "it is not a plain weights file (it holds pickled Python objects), and medcolor never unpickles code"
    if "central directory" in text or "zip archive" in text or "unexpected EOF" in text or "truncated" in text:
        return TRUNCATED
    first = (text.splitlines() or [type(e).__name__])[0]
    return first if len(first) <= 200 else first[:first.rfind(".", 0, 200) + 1] or first[:200]


def check_output_file(path: Path, option: str = "--out") -> None:
    """A file medcolor is about to create: it must not exist and its folder must exist and be writable. Checked
    before any slow work, so a bad --out costs nothing."""
    path = Path(path)
    folder = path.parent
    if path.exists():
        raise UsageError(f"{path} already exists; choose another {option} (medcolor never overwrites)")
    if any(p.exists() and not p.is_dir() for p in [folder, *folder.parents]):
        raise UsageError(f"{option} {path}: {next(p for p in [folder, *folder.parents] if p.exists() and not p.is_dir())} "
                         f"is a file, not a folder")
    if not folder.is_dir():
        raise UsageError(f"{option} {path}: folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{option} {path}: folder {folder} is not writable")


def claim_new(path: Path, is_dir: bool = False) -> Path:
    """`path`, or path-2, path-3 ... when it exists. Creating it is atomic (mkdir, or an exclusive open), so two
    processes never get the same name and nothing that exists is ever overwritten."""
    path = Path(path)
    for k in range(1, 1000):
        candidate = path if k == 1 else path.with_name(f"{path.stem}-{k}{path.suffix}") if not is_dir \
            else path.with_name(f"{path.name}-{k}")
        try:
            if is_dir:
                candidate.mkdir()
            else:
                candidate.open("x").close()
            return candidate
        except FileExistsError:
            continue
        except OSError as e:  # a missing or read-only folder, a full disk: one line, nothing made
            raise UsageError(f"cannot create {candidate}: {e.strerror}") from None
    raise RunError(f"too many {path.name} variants in {path.parent}")


@contextlib.contextmanager
def removed_on_failure(path: Path):
    """Remove `path` (a file or folder this command made) when the block fails: no half-written output is left."""
    try:
        yield path
    except BaseException:
        path = Path(path)
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        raise


WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}


def write_failure(e: OSError) -> MedcolorError | None:
    """One line for an OSError that is a failure to write, naming the folder: a read-only or unwritable folder is
    bad input (exit 2), a full disk a failure while running (exit 1); None for other OSErrors."""
    if e.errno not in WRITE_ERRNOS:
        return None
    where = Path(e.filename).parent if e.filename and not Path(e.filename).is_dir() else e.filename
    return write_error(e, f"cannot write in {where or 'the output folder'}: {e.strerror}; free some space or choose a "
                          f"writable folder")


def write_error(e: OSError, message: str) -> MedcolorError:
    """A failure to write as medcolor reports it: a full disk is a failure while running (exit 1), a read-only or
    unwritable folder bad input (exit 2)."""
    return RunError(message) if e.errno in (errno.ENOSPC, errno.EDQUOT) else UsageError(message)


def is_plain_name(name: str) -> bool:
    """A run-folder component: one plain name, never a path (not empty, not '.' or '..', no '/', '\\' or '~')."""
    return bool(name) and name not in (".", "..") and re.fullmatch(r"[^/\\~]+", name) is not None
