"""Per-clip forward-kinematics error of the reference against the recorded body positions.

    python -m skillmimic.motion.fk_report [PATH ...] [--max-mean-cm 3.5]

Why: the data's joint triplets are per-joint rotation vectors, not hinge angles. This
report shows, for every clip, the mean distance between the recorded body positions
(columns 165:324) and forward kinematics of (a) our converted reference and (b) the raw
triplets used as hinge angles, as the original code did. It exits non-zero when the
converted mean (over all frames, and over clips) exceeds the threshold, so CI can gate on it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from ..assets.skeleton import SKELETON_BALLPLAY
from ..kinematics import forward_kinematics
from . import columns as C
from .io import MotionFileError, find_clips, load_clip
from .reference import convert_clip

DEFAULT_DATA = Path("..") / "shared" / "data" / "motions"


def default_paths() -> list[Path]:
    """``../shared/data/motions`` from the working directory, else from the repo root."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        p = base / DEFAULT_DATA
        if p.is_dir():
            return [p]
    return []


def clip_report_parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """Command-line parser of a report over clip files or folders (``paths``)."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path,
                        help=f"clip files or folders (default: {DEFAULT_DATA} if it exists)")
    return parser


def report_paths(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[Path]:
    """The given paths, else the shared data folder, else a usage error."""
    paths = args.paths or default_paths()
    if not paths:
        parser.error(f"no PATH given and {DEFAULT_DATA} not found")
    return paths


def clip_fk_errors(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per valid frame mean body error (m) of the converted reference and of raw triplets."""
    ref = convert_clip(raw)
    recorded = ref.recorded_body_pos[ref.valid]
    conv = forward_kinematics(ref.root_pos, ref.root_quat, ref.dof_pos).pos[ref.valid]
    # the original: triplets as X-Y-Z hinge angles
    raw_pos = forward_kinematics(ref.root_pos, ref.root_quat, raw[:, C.DOF].to(torch.float64),
                                 skeleton=SKELETON_BALLPLAY.with_hinge_order("XYZ")).pos[ref.valid]
    return (conv - recorded).norm(dim=-1).mean(dim=-1), (raw_pos - recorded).norm(dim=-1).mean(dim=-1)


def main(argv: list[str] | None = None) -> int:
    parser = clip_report_parser("python -m skillmimic.motion.fk_report", __doc__)
    parser.add_argument("--max-mean-cm", type=float, default=3.5,
                        help="fail if the converted mean error exceeds this (cm); default 3.5")
    args = parser.parse_args(argv)
    try:
        files = find_clips(report_paths(parser, args))
    except MotionFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    names = [os.path.relpath(f) for f in files]
    width = max(len(n) for n in names)
    print(f"{'clip':<{width}} {'frames':>6} {'conv cm':>8} {'max cm':>7} {'raw cm':>7}")
    conv_all, raw_all, clip_means, failed = [], [], [], []
    for f, name in zip(files, names):
        try:
            conv, raw = clip_fk_errors(load_clip(f))
        except MotionFileError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed.append(f)
            continue
        conv_all.append(conv)
        raw_all.append(raw)
        clip_means.append((float(conv.mean()) * 100, name))
        print(f"{name:<{width}} {conv.shape[0]:>6} {conv.mean() * 100:>8.2f} {conv.max() * 100:>7.2f} {raw.mean() * 100:>7.2f}")
    if not conv_all:
        print("error: no clip could be loaded", file=sys.stderr)
        return 2

    conv_frames = torch.cat(conv_all).mean().item() * 100
    raw_frames = torch.cat(raw_all).mean().item() * 100
    conv_clips = sum(m for m, _ in clip_means) / len(clip_means)
    raw_clips = torch.stack([r.mean() for r in raw_all]).mean().item() * 100
    worst, worst_file = max(clip_means, key=lambda x: x[0])
    print()
    print(f"clips: {len(conv_all)}  frames: {sum(c.shape[0] for c in conv_all)}  failed to load: {len(failed)}")
    print(f"mean body error, converted:  {conv_frames:.2f} cm over frames, {conv_clips:.2f} cm over clips")
    print(f"mean body error, raw (orig): {raw_frames:.2f} cm over frames, {raw_clips:.2f} cm over clips")
    print(f"worst clip (converted): {worst:.2f} cm  {worst_file}")
    ok = max(conv_frames, conv_clips) <= args.max_mean_cm and not failed
    print(f"{'PASS' if ok else 'FAIL'}: converted mean <= {args.max_mean_cm} cm"
          + ("" if not failed else f"; {len(failed)} clip(s) failed to load"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
