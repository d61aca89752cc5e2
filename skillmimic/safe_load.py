"""Reading torch files without ever running code from them.

Why: ``torch.load(weights_only=False)`` unpickles arbitrary Python objects, and a pickle
can call any function while it loads (``os.system`` included). Every file skillmimic
reads -- training checkpoints (``resume=``, ``checkpoint=``, ``llc_checkpoint=``),
history-encoder checkpoints and motion clips -- therefore goes through
:func:`load_torch_file`, which only accepts tensors, numbers, strings and plain
containers (``weights_only=True``), and turns every failure into one line that names the
file and says why.

Checkpoints written by skillmimic before format 2 held numpy/Python RNG states as pickled
objects. Such a file is refused like any other; a person who wrote it and trusts it can
load it once with the environment variable ``SKILLMIMIC_TRUST_LEGACY_CHECKPOINTS=1``
(:data:`TRUST_LEGACY_ENV`, honoured for training checkpoints only). Re-saving it (resume,
then let one checkpoint be written) converts it to the safe format.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

#: environment variable: "1" lets :func:`load_torch_file` fall back to full unpickling
#: (code execution!) for a file it refused, where the caller allows it (training checkpoints)
TRUST_LEGACY_ENV = "SKILLMIMIC_TRUST_LEGACY_CHECKPOINTS"


def trust_legacy() -> bool:
    return os.environ.get(TRUST_LEGACY_ENV, "").strip() == "1"


def _refusal_detail(exc: BaseException) -> str:
    """What torch's long weights-only message says was refused, in a few words."""
    text = str(exc)
    m = re.search(r"GLOBAL ([\w.]+)", text)
    if m:
        return f"it imports {m.group(1)}"
    m = re.search(r"Unsupported operand \d+", text)
    return m.group(0) if m else "an object that is not a tensor, number, string or plain container"


def load_torch_file(path: str | os.PathLike, what: str, error: type[Exception], map_location: Any = "cpu",
                    allow_legacy: bool = False) -> Any:
    """``torch.load(path, weights_only=True)``, or raise ``error`` with one line
    ``"<what> <path>: <why>"``.

    ``allow_legacy``: where the caller permits it and :data:`TRUST_LEGACY_ENV` is set, a
    refused file is loaded with full unpickling after a warning naming it."""
    path = Path(path)
    if not path.exists():
        raise error(f"{what} {path}: file does not exist")
    if not path.is_file():
        raise error(f"{what} {path}: not a file")
    size = path.stat().st_size
    if size == 0:
        raise error(f"{what} {path}: file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():      # torch warns about pickle protocols before refusing them
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "global" not in str(e).lower():    # not a refused import: bad bytes or an unknown opcode
            raise error(f"{what} {path}: cannot be read ({size} bytes): truncated, corrupt or not a torch.save "
                        f"file (UnpicklingError: {_refusal_detail(e)[:200]})") from None
        if allow_legacy and trust_legacy():
            warnings.warn(f"{what} {path}: loading pickled objects because {TRUST_LEGACY_ENV}=1 "
                          f"(this runs code from the file; only for files you wrote yourself)", stacklevel=2)
            return torch.load(path, map_location=map_location, weights_only=False)
        hint = (f"; if you wrote it yourself with an older skillmimic and trust it, set {TRUST_LEGACY_ENV}=1 "
                f"to load it once" if allow_legacy else "")
        raise error(f"{what} {path}: refused to load: it holds pickled Python objects "
                    f"({_refusal_detail(e)}), and only tensors, numbers, strings and plain containers are "
                    f"accepted (loading it could run code from the file){hint}") from None
    except Exception as e:  # torch raises RuntimeError/EOFError/... on truncated or foreign bytes
        reason = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise error(f"{what} {path}: cannot be read ({size} bytes): truncated, corrupt or not a torch.save "
                    f"file ({type(e).__name__}: {reason[:200]})") from None


__all__ = ["TRUST_LEGACY_ENV", "load_torch_file", "trust_legacy"]


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return                      # not supported (e.g. some network filesystems / Windows)
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_save(state: dict, path: str | os.PathLike, unique_tmp: bool = False) -> Path:
    """``torch.save(state)`` to ``path`` via a temporary file in the same folder, fsynced and
    renamed over ``path`` (``os.replace``): a reader sees the complete old file or the
    complete new one, never a partial write (a training run is killed at arbitrary times).

    ``unique_tmp``: a uniquely named temporary file, for files several processes may write
    at once (a shared cache); otherwise one fixed name, so a killed write leaves at most one
    stale file beside a run's checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if unique_tmp:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp, f = Path(name), os.fdopen(fd, "wb")
    else:
        tmp = path.with_name(f".{path.name}.tmp")
        f = open(tmp, "wb")
    try:
        with f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path
