"""Which hinge order suits each joint: Euler-singularity report over a set of clips.

    python -m skillmimic.motion.euler_report [PATH ...] [--near-deg 75]

Why: a joint is three hinges, i.e. intrinsic Euler angles in some order. When the middle
angle nears +-90 degrees the outer two are undetermined, and converted reference angles
swing by up to pi between frames and leave [-pi, pi] once made continuous. Which order
keeps a joint away from that depends on how the joint moves in the data, so it is measured
here. Per joint, for X-Y-Z (the original), for the skeleton table's order and for the
proposed one: the largest middle angle and the share of frames whose middle angle exceeds
``--near-deg``. Then, for X-Y-Z and the table, the converted reference as the motion library
builds it: frames with a hinge angle beyond +-pi, the largest angle, the largest
frame-to-frame hinge jump, and jumps above 1 rad while the joint's rotation itself moved
less than 0.5 rad (representation jumps; the rest are jumps in the recorded rotation).
Counts are over valid (non-missing) frames.

Proposal rule: keep X-Y-Z where no frame comes near the singularity (so the model stays
the original's wherever that is harmless); elsewhere take the order with the fewest
near-singular frames, then the fewest frames whose outer angles wrap past +-pi, then the
smallest maximum middle angle.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import roma
import torch

from ..assets.skeleton import SKELETON_BALLPLAY, Skeleton
from ..rotations import EULER_ORDERS, matrix_to_hinge
from . import columns as C
from .fk_report import clip_report_parser, report_paths
from .io import MotionFileError, find_clips, load_clip
from .reference import fill_index, hinge_angles, missing_frames, wrap_angle

JUMP_RAD = 1.0          # a reference hinge jump above this between frames is reported
STILL_RAD = 0.5         # ... as a representation jump if the joint's rotation moved less


@dataclass
class Clips:
    """Per-joint rotations of a set of clips, flat over frames (missing frames filled)."""

    expmap: torch.Tensor     # (F, J, 3) float64
    valid: torch.Tensor      # (F,) bool
    pair: torch.Tensor       # (F-1,) bool: frames f and f+1 are consecutive frames of one clip, both valid
    moved: torch.Tensor      # (F-1, J) geodesic rotation change of each joint between f and f+1 (rad)
    starts: list[int]
    num_clips: int


def load_joint_rotations(paths) -> Clips:
    """Every clip's per-joint exp-maps, concatenated (float64), with clip boundaries."""
    parts, valids, starts, start = [], [], [], 0
    for f in find_clips(paths):
        raw = load_clip(f).to(torch.float64)
        valid = ~missing_frames(raw)
        parts.append(raw[fill_index(valid)][:, C.DOF].reshape(-1, C.NUM_JOINTS, 3))
        valids.append(valid)
        starts.append(start)
        start += raw.shape[0]
    expmap, valid = torch.cat(parts), torch.cat(valids)
    pair = valid[1:] & valid[:-1]
    pair[torch.tensor(starts[1:], dtype=torch.long) - 1] = False
    rot = roma.rotvec_to_rotmat(expmap)
    moved = roma.rotmat_geodesic_distance(rot[1:], rot[:-1])
    return Clips(expmap, valid, pair, moved, starts, len(starts))


def middle_angles(clips: Clips, order: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(|middle angle| (F_valid, J), outer-angle wraps past +-pi (J,)) for one order on all joints."""
    angles = matrix_to_hinge(roma.rotvec_to_rotmat(clips.expmap), order)
    outer = angles[..., [0, 2]]
    wraps = ((outer[1:] - outer[:-1]).abs() > math.pi).any(-1) & clips.pair.unsqueeze(-1)
    return angles[clips.valid][..., 1].abs(), wraps.sum(0)


def order_table(clips: Clips, near_deg: float) -> dict[str, dict[str, torch.Tensor]]:
    """Per order: per-joint max middle angle (deg), near-singular frame count, outer wraps."""
    near = math.radians(near_deg)
    out = {}
    for order in EULER_ORDERS:
        mid, wraps = middle_angles(clips, order)
        out[order] = {"max_deg": torch.rad2deg(mid.amax(0)), "near": (mid > near).sum(0), "wraps": wraps}
    return out


def propose_orders(table: dict[str, dict[str, torch.Tensor]]) -> list[str]:
    """The proposal rule of the module doc, per joint."""
    num_joints = table["XYZ"]["near"].shape[0]
    proposal = []
    for j in range(num_joints):
        if int(table["XYZ"]["near"][j]) == 0 and int(table["XYZ"]["wraps"][j]) == 0:
            proposal.append("XYZ")
            continue
        proposal.append(min(EULER_ORDERS, key=lambda o: (int(table[o]["near"][j]), int(table[o]["wraps"][j]),
                                                        float(table[o]["max_deg"][j]))))
    return proposal


def _continuous(angles: torch.Tensor) -> torch.Tensor:
    """The conversion before per-joint orders: angles unwrapped in time, then shifted by whole
    turns so that the clip mean lies in [-pi, pi]."""
    d = wrap_angle(angles.diff(dim=0))
    out = torch.cat([angles[:1], angles[:1] + d.cumsum(dim=0)])
    return out - 2 * math.pi * torch.round(out.mean(dim=0, keepdim=True) / (2 * math.pi))


def reference_stats(clips: Clips, skeleton: Skeleton, continuous: bool = False) -> dict[str, float]:
    """Converted reference hinge angles (the motion library's conversion, per clip) under
    ``skeleton``'s orders: bounds and frame-to-frame jumps over valid frames. ``continuous``:
    the conversion before per-joint orders (see :func:`_continuous`), for comparison."""
    ends = clips.starts[1:] + [clips.expmap.shape[0]]
    per_clip = [hinge_angles(clips.expmap[s:e].reshape(e - s, -1), skeleton) for s, e in zip(clips.starts, ends)]
    if continuous:
        per_clip = [_continuous(a) for a in per_clip]
    dof = torch.cat(per_clip).reshape(-1, C.NUM_JOINTS, 3)
    absval = dof[clips.valid].abs()
    jump = (dof[1:] - dof[:-1]).abs().amax(-1)[clips.pair]          # (pairs, J)
    moved = clips.moved[clips.pair]
    big = jump > JUMP_RAD
    return {
        "frames": int(clips.valid.sum()),
        "beyond_pi_frames": int((absval > math.pi).flatten(1).any(-1).sum()),
        "max_abs": float(absval.max()),
        "max_jump": float(jump.max()),
        "jumps_gt_1": int(big.sum()),
        "representation_jumps": int((big & (moved < STILL_RAD)).sum()),
        "max_representation_jump": float(jump[moved < STILL_RAD].max()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = clip_report_parser("python -m skillmimic.motion.euler_report", __doc__)
    parser.add_argument("--near-deg", type=float, default=75.0,
                        help="a middle angle above this counts as near the singularity; default 75")
    args = parser.parse_args(argv)
    try:
        clips = load_joint_rotations(report_paths(parser, args))
    except MotionFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    table = order_table(clips, args.near_deg)
    skel = SKELETON_BALLPLAY
    proposal = propose_orders(table)
    nframes = int(clips.valid.sum())
    print(f"{clips.num_clips} clips, {nframes} valid frames; 'near' = middle angle > {args.near_deg:g} deg; "
          f"columns: max middle angle (deg), % of frames near")
    print(f"{'joint':<11} {'XYZ':>13} | {'table':>5} {'':>13} | {'proposed':>8} {'':>13}")

    def cell(order, j):
        t = table[order]
        return f"{float(t['max_deg'][j]):5.1f} {100 * int(t['near'][j]) / nframes:6.2f}%"

    for j in range(skel.num_joints):
        o, p = skel.hinge_orders[j], proposal[j]
        flag = "" if o == p else "  <- table differs"
        print(f"{skel.names[j + 1]:<11} {cell('XYZ', j):>13} | {o:>5} {cell(o, j):>13} | {p:>8} {cell(p, j):>13}{flag}")

    def near_total(orders):
        return sum(int(table[o]["near"][j]) for j, o in enumerate(orders))

    print()
    print(f"joint-frames near the singularity: XYZ {near_total(['XYZ'] * skel.num_joints)}, "
          f"table {near_total(skel.hinge_orders)}, proposed {near_total(proposal)}")
    changed = {skel.names[j + 1]: o for j, o in enumerate(proposal) if o != "XYZ"}
    print(f"proposed HINGE_ORDERS = {changed}")
    print()
    print("converted reference (valid frames; jumps between consecutive valid frames):")
    print(f"{'orders':<28} {'beyond pi':>16} {'max |q|':>8} {'max jump':>9} {'jumps>1':>8} {'repr. jumps>1':>14} {'max repr. jump':>15}")
    xyz = skel.with_hinge_order("XYZ")
    for name, sk, cont in (("XYZ made continuous (before)", xyz, True), ("XYZ", xyz, False), ("table", skel, False)):
        s = reference_stats(clips, sk, cont)
        print(f"{name:<28} {s['beyond_pi_frames']:>7} ({100 * s['beyond_pi_frames'] / s['frames']:5.2f}%) "
              f"{s['max_abs']:>8.2f} {s['max_jump']:>9.2f} {s['jumps_gt_1']:>8} {s['representation_jumps']:>14} "
              f"{s['max_representation_jump']:>15.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
