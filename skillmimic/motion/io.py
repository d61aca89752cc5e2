"""Reading BallPlay ``.pt`` clips from disk: discovery, ordering, validation, labels.

Why strict validation here: a bad clip (a dict saved by mistake, a truncated download,
NaNs from a retargeting step) otherwise surfaces much later as a NaN reward or an index
error deep inside training. Every problem is reported once, as :class:`MotionFileError`,
with the file and the problem in the message.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from pathlib import Path
from typing import Iterable, Union

import torch

from ..safe_load import load_torch_file
from . import columns as C

PathLike = Union[str, os.PathLike]

_TRAILING_INT = re.compile(r"(\d+)\.pt$")
_LABEL = re.compile(r"[0-9]{3}")

# Column ranges by name, to say *where* a bad value sits in a 337-wide row.
_COLUMN_NAMES = (
    (C.ROOT_POS, "root position"),
    (C.ROOT_ROT, "root rotation"),
    (C.ROOT_ROT_DUP, "root rotation (duplicate)"),
    (C.DOF, "joint rotations"),
    (C.BODY_POS, "body positions"),
    (C.OBJ_POS, "object position"),
    (C.OBJ_ROT, "object rotation"),
    (C.UNUSED, "unused"),
    (slice(C.CONTACT, C.CONTACT + 1), "contact flag"),
)


class MotionFileError(ValueError):
    """A motion clip (or a folder of clips) cannot be used; the message names the path."""


def column_name(col: int) -> str:
    for sl, name in _COLUMN_NAMES:
        if sl.start <= col < sl.stop:
            return name
    return "unknown"


def load_clip(path: PathLike) -> torch.Tensor:
    """Load one clip as a (T, 337) float32 CPU tensor, or raise :class:`MotionFileError`.

    ``map_location='cpu'`` because the released clips were saved from a CUDA device, and
    ``weights_only=True`` so that a clip file can never execute code when loaded.
    """
    path = Path(path)
    if not path.is_file():
        problem = "is not a file" if path.exists() else "file does not exist"
        raise MotionFileError(f"motion clip {path}: {problem}")
    data = load_torch_file(path, "motion clip", MotionFileError)
    if not isinstance(data, torch.Tensor):
        raise MotionFileError(
            f"motion clip {path}: not a tensor: the file holds a {type(data).__name__}, "
            f"expected a float tensor of shape (T, {C.NUM_COLUMNS})")
    if not data.is_floating_point():
        raise MotionFileError(f"motion clip {path}: unsupported dtype {data.dtype}, expected a floating point tensor "
                              f"(an integer clip would load rounded to whole metres and radians)")
    if data.dim() != 2 or data.shape[1] != C.NUM_COLUMNS:
        raise MotionFileError(
            f"motion clip {path}: wrong shape: expected (T, {C.NUM_COLUMNS}), got {tuple(data.shape)}")
    if data.shape[0] == 0:
        raise MotionFileError(f"motion clip {path}: zero frames (shape {tuple(data.shape)})")
    clip = data.detach().to(dtype=torch.float32).contiguous()
    bad = ~torch.isfinite(clip)
    if bad.any():
        frame, col = (int(i) for i in bad.nonzero()[0])
        value = clip[frame, col].item()
        kind = "NaN" if value != value else "inf"
        raise MotionFileError(
            f"motion clip {path}: non-finite value {kind} at frame {frame}, column {col} "
            f"({column_name(col)}); {int(bad.sum())} non-finite values in total")
    _check_bounds(path, clip)
    if (clip == 0).all():
        raise MotionFileError(
            f"motion clip {path}: all {clip.shape[0]} frames are missing (every value is zero)")
    return clip


_BOUNDS = ((C.ROOT_POS, C.POSITION_LIMIT, "m"), (C.BODY_POS, C.POSITION_LIMIT, "m"),
           (C.OBJ_POS, C.POSITION_LIMIT, "m"), (C.ROOT_ROT, C.ANGLE_LIMIT, "rad"),
           (C.ROOT_ROT_DUP, C.ANGLE_LIMIT, "rad"), (C.DOF, C.ANGLE_LIMIT, "rad"), (C.OBJ_ROT, C.ANGLE_LIMIT, "rad"))


def _check_bounds(path: Path, clip: torch.Tensor) -> None:
    """Positions within +-POSITION_LIMIT m, exp-map angles within +-ANGLE_LIMIT rad, the
    contact flag in [0, 1]: the first offending value is named by frame and column."""
    for sl, limit, unit in _BOUNDS:
        bad = clip[:, sl].abs() > limit
        if bad.any():
            frame, col = (int(i) for i in bad.nonzero()[0])
            col += sl.start
            raise MotionFileError(
                f"motion clip {path}: implausible value {clip[frame, col].item():.6g} at frame {frame}, column {col} "
                f"({column_name(col)}): must lie within +-{limit:g} {unit}; {int(bad.sum())} such values in total")
    contact = clip[:, C.CONTACT]
    bad = (contact < 0) | (contact > 1)
    if bad.any():
        frame = int(bad.nonzero()[0])
        raise MotionFileError(f"motion clip {path}: contact flag {contact[frame].item():.6g} at frame {frame}, column "
                              f"{C.CONTACT} (contact flag): must lie in [0, 1]")


def warn_duplicate_clips(files: Iterable[PathLike], clips: Iterable[torch.Tensor]) -> list[tuple[Path, Path]]:
    """Warn about clips with identical values (a copied file loads as a second clip, doubling
    its sampling weight); returns the (first, duplicate) pairs."""
    seen: dict[tuple[tuple[int, ...], str], Path] = {}
    pairs = []
    for f, clip in zip(files, clips):
        key = (tuple(clip.shape), hashlib.sha1(clip.contiguous().numpy().tobytes()).hexdigest())
        if key in seen:
            pairs.append((seen[key], Path(f)))
        else:
            seen[key] = Path(f)
    if pairs:
        shown = "; ".join(f"{b} is identical to {a}" for a, b in pairs[:3])
        more = f"; and {len(pairs) - 3} more" if len(pairs) > 3 else ""
        warnings.warn(f"{len(pairs)} motion clip(s) duplicate another clip value for value (every frame and "
                      f"column), so they load as extra copies that raise the motion's sampling weight: "
                      f"{shown}{more}", stacklevel=2)
    return pairs


def clip_sort_key(path: PathLike) -> tuple[int, str]:
    """The original's order: the integer right before ``.pt`` (-1 if none); ties by path.

    Clip ids follow this order, and V2's stitched-trajectory graphs are keyed by them.
    """
    m = _TRAILING_INT.search(Path(path).name)
    return (int(m.group(1)) if m else -1, str(path))


def find_clips(paths: PathLike | Iterable[PathLike]) -> list[Path]:
    """Clip files of one path or several: a file is taken as is, a folder is searched
    recursively for ``*.pt``. Sorted by :func:`clip_sort_key`, duplicates removed."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found: dict[str, Path] = {}
    for p in paths:
        p = Path(p)
        if p.is_file():
            files = [p]
        elif p.is_dir():
            files = [f for f in p.rglob("*.pt") if f.is_file()]
            if not files:
                raise MotionFileError(f"motion folder {p}: contains no clips (no *.pt files, searched recursively)")
        else:
            raise MotionFileError(f"motion path {p}: does not exist")
        for f in files:
            found.setdefault(str(f.resolve()), f)
    if not found:
        raise MotionFileError("no motion paths given")
    return sorted(found.values(), key=clip_sort_key)


def clip_label(path: PathLike) -> int:
    """Skill label = the integer of the file name's first three characters (``001_...`` -> 1)."""
    name = Path(path).name
    if not _LABEL.fullmatch(name[:3]):
        raise MotionFileError(
            f"motion clip {path}: bad skill label: the file name must start with three digits "
            f"(e.g. 001_pick.pt), got {name!r}")
    label = int(name[:3])
    if label >= C.NUM_SKILLS:
        raise MotionFileError(
            f"motion clip {path}: skill label {label} (the file name's first three digits) must be below "
            f"{C.NUM_SKILLS}, the width of the policy's skill one-hot (labels 000-{C.NUM_SKILLS - 1:03d})")
    return label


def skill_name(path: PathLike) -> str:
    """Skill name = the clip's folder name (``.../pick_40/001_x.pt`` -> ``pick_40``)."""
    return Path(path).parent.name
