"""Choose the physics step (timestep, substeps, integrator) by measurement.

For each candidate, real BallPlay clips are replayed open loop: the humanoid and ball
start in the reference state of a frame (velocities by central differences), the root
is free (no root forces, no policy), and the position actuators get the reference hinge
angles of the next frame as targets at every 60 Hz control step. Without a policy the
humanoid falls sooner or later; what the table shows is whether the PD loop is stable
and how well it tracks in the first half second:

* ``bad``: rollouts that produced NaN/inf, tripped MuJoCo's bad-acceleration reset or
  exceeded 1e3 in |qvel| (the joint range is +-pi; 1e3 rad/s is an explosion);
* ``max|qvel|``: largest generalised velocity seen (humanoid and ball);
* ``err 0.5s``: mean distance of the 53 bodies from the reference FK over the first
  30 control steps (0.5 s), averaged over rollouts; ``err 1s`` likewise for 60 steps;
* ``err 1st``: error after the first control step -- the shock of starting from a
  reference frame whose feet and ball overlap the floor and fingers by a few cm;
* ball: the ball contact is a damped spring (solref ``(-k, -b)``) resolved in a few
  steps, so the bounce depends on the timestep. A first table calibrates ``b`` for a
  range of stiffnesses ``k`` at each timestep and reports the restitution spread over
  drops from 0.3 to 3.0 m and the penetration at a 5 m/s impact; each replay then uses
  the stiffest ball that keeps every drop within 0.8 +- 0.04 at that timestep (or, if
  none does, the calibrated one with the smallest spread);
* ``joint err``: mean |hinge angle - reference| over the first 0.5 s (rad), the PD
  loop's own tracking, less dominated by the fall of the unactuated root;
* ``ms/ctrl``: single-thread wall time of one 60 Hz control step (median over rollouts);
* contacts per physics step: humanoid self-contacts, humanoid-floor, ball-anything.

A last table lists the self-contact body pairs present in the most control steps, and
the default setting is rerun with self-collision off and with the always-touching
thumb segments excluded, to see whether self-collision changes tracking.

    python benchmarks/physics_settings.py [--motions ../shared/data/motions/BallPlay-M]
"""

from __future__ import annotations

import argparse
import copy
import pathlib
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field

import mujoco
import numpy as np
import torch

from skillmimic.assets.calibrate_ball import CALIBRATION_HEIGHTS, calibrate, drop_test
from skillmimic.assets.mjcf import PhysicsConfig, SceneConfig, build_scene_xml, scene_skeleton
from skillmimic.motion import columns as C
from skillmimic.motion.reference import hinge_angles
from skillmimic.rotations import expmap_to_quat

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_MOTIONS = REPO.parent / "shared" / "data" / "motions" / "BallPlay-M"
# A run (dribble forward), a layup and two picks: locomotion, a jump and a deep crouch.
DEFAULT_CLIPS = (
    "run/013_018pickle_run_3.pt",
    "layup/031_015pickle_layup_001_001.pt",
    "pick_40/001_007pickle_pick_000.pt",
    "pick_40/001_008pickle_pick_001.pt",
)
CANDIDATES = (
    (1.0 / 120.0, 2, "implicitfast"),   # the original's physics rate
    (1.0 / 120.0, 2, "Euler"),
    (1.0 / 120.0, 2, "implicit"),
    (1.0 / 180.0, 3, "implicitfast"),
    (1.0 / 240.0, 4, "implicitfast"),
    (1.0 / 240.0, 4, "Euler"),
    (1.0 / 480.0, 8, "implicitfast"),
)
EXPLODE_QVEL = 1e3
BALL_STIFFNESS = (2000.0, 5000.0, 10000.0, 20000.0, 40000.0, 80000.0)
BALL_TOLERANCE = 0.04           # every drop within target +- this (tests allow 0.05)
IMPACT_5MS = 25.0 / (2 * 9.81)  # drop height giving a 5 m/s impact


@dataclass
class RolloutStats:
    bad: bool = False
    max_qvel: float = 0.0
    err: list = field(default_factory=list)          # per control step, mean body error (m)
    finger_err: list = field(default_factory=list)   # same over the 30 finger bodies
    joint_err: list = field(default_factory=list)    # mean |hinge - reference| (rad)
    ms_per_ctrl: float = 0.0
    self_contacts: float = 0.0                       # per physics step
    floor_contacts: float = 0.0
    ball_contacts: float = 0.0
    self_pairs: Counter = field(default_factory=Counter)   # body pair -> control steps in contact
    steps: int = 0


class Scene:
    """A compiled scene plus the index bookkeeping the replay needs.

    ``variant``: None, "noself" (``SceneConfig.self_collision = False``: humanoid geoms
    keep colliding with floor and ball but not with each other) or "nothumb13"
    (Thumb1-Thumb3 pairs excluded).
    """

    def __init__(self, cfg: SceneConfig, variant: str | None = None):
        if variant == "noself":
            cfg = copy.deepcopy(cfg)
            cfg.self_collision = False
        elif variant not in (None, "nothumb13"):
            raise ValueError(f"unknown variant {variant!r}")
        self.cfg = cfg
        xml = build_scene_xml(cfg)
        if variant == "nothumb13":
            root = ET.fromstring(xml)
            contact = root.find("contact")
            if contact is None:
                contact = ET.SubElement(root, "contact")
            for side in "LR":
                ET.SubElement(contact, "exclude", body1=f"{side}_Thumb1", body2=f"{side}_Thumb3")
            xml = ET.tostring(root, encoding="unicode")
        self.model = mujoco.MjModel.from_xml_string(xml)
        m = self.model
        self.body_ids = np.arange(1, 54)                       # humanoid: bodies 1..53 (0 = world)
        self.object_body = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "object")
        self.finger_ids = np.array([i for i in self.body_ids
                                    if any(f in m.body(i).name for f in ("Index", "Middle", "Pinky", "Ring", "Thumb"))])
        jb = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "object")
        self.ball_qpos = int(m.jnt_qposadr[jb])
        self.hinge_qpos = slice(7, 7 + 156)
        self.hinge_qvel = slice(6, 6 + 156)
        self.geom_body = m.geom_bodyid.copy()

    def reference_qpos(self, clip: np.ndarray) -> np.ndarray:
        """(T, nq) MuJoCo qpos of every clip frame: exp-maps -> wxyz quaternion / hinge angles
        in the scene's hinge orders (the motion library's conversion)."""
        t = torch.from_numpy(clip).double()
        T = t.shape[0]
        qpos = np.zeros((T, self.model.nq))
        qpos[:, 0:3] = clip[:, C.ROOT_POS]
        qpos[:, 3:7] = expmap_to_quat(t[:, C.ROOT_ROT]).numpy()
        qpos[:, self.hinge_qpos] = hinge_angles(t[:, C.DOF], scene_skeleton(self.cfg)).numpy()
        qpos[:, self.ball_qpos:self.ball_qpos + 3] = clip[:, C.OBJ_POS]
        qpos[:, self.ball_qpos + 3] = 1.0
        return qpos

    def reference_qvel(self, qpos: np.ndarray, t: int, fps: float = C.FPS) -> np.ndarray:
        """Central difference at frame t (one-sided at the ends); hinge steps wrapped to +-pi.

        ``mj_differentiatePos`` handles the free joints (angular velocity in the body frame,
        as MuJoCo's free-joint qvel expects)."""
        a, b = max(t - 1, 0), min(t + 1, len(qpos) - 1)
        qvel = np.zeros(self.model.nv)
        mujoco.mj_differentiatePos(self.model, qvel, (b - a) / fps, qpos[a], qpos[b])
        dh = qpos[b, self.hinge_qpos] - qpos[a, self.hinge_qpos]
        qvel[self.hinge_qvel] = ((dh + np.pi) % (2 * np.pi) - np.pi) * fps / (b - a)
        return qvel

    def reference_body_pos(self, qpos: np.ndarray) -> np.ndarray:
        """(T, 53, 3) world positions of the humanoid bodies for each reference qpos."""
        data = mujoco.MjData(self.model)
        out = np.empty((len(qpos), 53, 3))
        for i, q in enumerate(qpos):
            data.qpos[:] = q
            mujoco.mj_kinematics(self.model, data)
            out[i] = data.xpos[self.body_ids]
        return out

    def classify_contacts(self, data: mujoco.MjData, stats: RolloutStats, pairs: set) -> None:
        for c in data.contact[: data.ncon] if data.ncon else ():
            b1, b2 = self.geom_body[c.geom1], self.geom_body[c.geom2]
            if self.object_body in (b1, b2):
                stats.ball_contacts += 1
            elif b1 == 0 or b2 == 0:
                stats.floor_contacts += 1
            else:
                stats.self_contacts += 1
                pairs.add(tuple(sorted((self.model.body(b1).name, self.model.body(b2).name))))


def replay(scene: Scene, qpos_ref: np.ndarray, body_ref: np.ndarray, start: int, horizon: int) -> RolloutStats:
    """Open-loop PD replay of ``horizon`` control steps from reference frame ``start``."""
    m = scene.model
    ph = scene.cfg.physics
    data = mujoco.MjData(m)
    data.qpos[:] = qpos_ref[start]
    data.qvel[:] = scene.reference_qvel(qpos_ref, start)
    mujoco.mj_forward(m, data)
    stats = RolloutStats()
    elapsed = 0.0
    for k in range(horizon):
        # PD targets live in +-pi (the env's target = pi * action), as here
        data.ctrl[:] = np.clip(qpos_ref[start + k + 1, scene.hinge_qpos], -np.pi, np.pi)
        pairs: set = set()
        for _ in range(ph.substeps):
            t0 = time.perf_counter()
            mujoco.mj_step(m, data)
            elapsed += time.perf_counter() - t0
            scene.classify_contacts(data, stats, pairs)
        stats.self_pairs.update(pairs)
        stats.steps += 1
        finite = np.isfinite(data.qpos).all() and np.isfinite(data.qvel).all()
        qv = float(np.abs(data.qvel).max()) if finite else np.inf
        stats.max_qvel = max(stats.max_qvel, qv)
        if not finite or qv > EXPLODE_QVEL or data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number:
            stats.bad = True
            break
        dist = np.linalg.norm(data.xpos[scene.body_ids] - body_ref[start + k + 1], axis=-1)
        stats.err.append(float(dist.mean()))
        stats.finger_err.append(float(dist[scene.finger_ids - 1].mean()))
        dq = data.qpos[scene.hinge_qpos] - qpos_ref[start + k + 1, scene.hinge_qpos]
        stats.joint_err.append(float(np.abs((dq + np.pi) % (2 * np.pi) - np.pi).mean()))
    n_phys = max(stats.steps * ph.substeps, 1)
    stats.self_contacts /= n_phys
    stats.floor_contacts /= n_phys
    stats.ball_contacts /= n_phys
    stats.ms_per_ctrl = 1e3 * elapsed / max(stats.steps, 1)
    return stats


def load_clips(motions: pathlib.Path, names) -> dict[str, np.ndarray]:
    out = {}
    for name in names:
        path = motions / name
        out[path.stem] = torch.load(path, map_location="cpu", weights_only=True).double().numpy()
    return out


def start_frames(num_frames: int, every: int) -> list[int]:
    """Start frames 2, 2+every, ... with at least 0.5 s (30 frames) of reference after them."""
    return list(range(2, max(num_frames - 31, 3), every))


def evaluate(cfg: SceneConfig, clips: dict[str, np.ndarray], horizon: int, every: int,
             variant: str | None = None) -> list[RolloutStats]:
    scene = Scene(cfg, variant)
    runs = []
    for clip in clips.values():
        qpos = scene.reference_qpos(clip)
        body = scene.reference_body_pos(qpos)
        for s in start_frames(len(clip), every):
            runs.append(replay(scene, qpos, body, s, min(horizon, len(clip) - 1 - s)))
    return runs


def summarise(runs: list[RolloutStats]) -> dict:
    ok = [r for r in runs if not r.bad]

    def mean_over(key, n):
        vals = [np.mean(getattr(r, key)[:n]) for r in ok if len(getattr(r, key)) >= n]
        return float(np.mean(vals)) if vals else np.nan

    return {
        "rollouts": len(runs),
        "bad": sum(r.bad for r in runs),
        "max_qvel": max(r.max_qvel for r in runs),
        "err_first": mean_over("err", 1),
        "err_half": mean_over("err", 30),
        "err_one": mean_over("err", 60),
        "finger_half": mean_over("finger_err", 30),
        "joint_half": mean_over("joint_err", 30),
        "ms": float(np.median([r.ms_per_ctrl for r in runs])),
        "self": float(np.mean([r.self_contacts for r in runs])),
        "floor": float(np.mean([r.floor_contacts for r in runs])),
        "ball": float(np.mean([r.ball_contacts for r in runs])),
    }


def ball_sweep(physics: PhysicsConfig, target: float) -> list[dict]:
    """Calibrated damping, restitution spread and penetration for each stiffness."""
    rows = []
    for k in BALL_STIFFNESS:
        cfg = SceneConfig(physics=copy.deepcopy(physics))
        cfg.object.contact_stiffness = k
        try:
            cal = calibrate(cfg, target=target)
        except ValueError:
            rows.append({"k": k, "cfg": None})
            continue
        e = [r.restitution for r in drop_test(cal, CALIBRATION_HEIGHTS)]
        impact = drop_test(cal, (IMPACT_5MS,))[0]
        rows.append({"k": k, "cfg": cal, "b": cal.object.contact_damping, "e_min": min(e), "e_max": max(e),
                     "pen": impact.max_penetration, "steps": impact.contact_steps,
                     "ok": max(abs(min(e) - target), abs(max(e) - target)) <= BALL_TOLERANCE})
    return rows


def label(ph: PhysicsConfig) -> str:
    return f"1/{round(1 / ph.timestep)} x{ph.substeps} {ph.integrator}"


def print_ball_table(sweeps: dict[float, list[dict]]) -> None:
    print(f"ball drop test, damping calibrated to e = 0.8 (mean over drops {CALIBRATION_HEIGHTS[0]}-"
          f"{CALIBRATION_HEIGHTS[-1]} m):")
    print(f"{'dt':>7s} {'k':>7s} {'b':>8s} {'e min':>6s} {'e max':>6s} {'pen@5m/s':>9s} {'steps':>5s}  ok")
    for dt, rows in sweeps.items():
        for r in rows:
            if r["cfg"] is None:
                print(f"1/{round(1 / dt):<5d} {r['k']:7.0f}   no damping reaches 0.8 (unstable)")
                continue
            print(f"1/{round(1 / dt):<5d} {r['k']:7.0f} {r['b']:8.2f} {r['e_min']:6.3f} {r['e_max']:6.3f} "
                  f"{100 * r['pen']:7.2f}cm {r['steps']:5d}  {'yes' if r['ok'] else 'no'}")
    print()


def print_table(rows: list[tuple[str, float, dict]]) -> None:
    print(f"{'setting':28s} {'ball k':>7s} {'runs':>4s} {'bad':>3s} {'max|qvel|':>9s} {'err 1st':>8s} "
          f"{'err 0.5s':>8s} {'fingers':>8s} {'joint':>6s} {'err 1s':>7s} {'ms/ctrl':>7s} {'self':>5s} {'floor':>5s} {'ball':>5s}")
    for name, k, s in rows:
        print(f"{name:28s} {k:7.0f} {s['rollouts']:4d} {s['bad']:3d} {s['max_qvel']:9.3g} "
              f"{100 * s['err_first']:6.2f}cm {100 * s['err_half']:6.2f}cm {100 * s['finger_half']:6.2f}cm {s['joint_half']:6.3f} "
              f"{100 * s['err_one']:5.1f}cm {s['ms']:7.3f} {s['self']:5.2f} {s['floor']:5.2f} {s['ball']:5.2f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--motions", type=pathlib.Path, default=DEFAULT_MOTIONS)
    parser.add_argument("--clips", nargs="+", default=list(DEFAULT_CLIPS), help="paths under --motions")
    parser.add_argument("--horizon", type=int, default=90, help="control steps per rollout (60 = 1 s)")
    parser.add_argument("--every", type=int, default=30, help="start-frame spacing within a clip")
    parser.add_argument("--top-pairs", type=int, default=10)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    default = SceneConfig()
    target = default.object.restitution

    sweeps, ball_for = {}, {}
    for dt, _, integ in CANDIDATES:
        if dt not in sweeps:
            sweeps[dt] = ball_sweep(PhysicsConfig(timestep=dt, integrator=integ), target)
            calibrated = [r for r in sweeps[dt] if r["cfg"] is not None]
            good = [r for r in calibrated if r["ok"]]
            best = good[-1] if good else min(calibrated, key=lambda r: r["e_max"] - r["e_min"])
            ball_for[dt] = best["cfg"].object
    print_ball_table(sweeps)

    clips = load_clips(args.motions, args.clips)
    print(f"clips: {', '.join(f'{k} ({len(v)} frames)' for k, v in clips.items())}")
    print(f"horizon {args.horizon} control steps at 60 Hz, start frames every {args.every}; "
          f"contacts are per physics step\n")
    rows = []
    dp = default.physics
    default_runs = None
    for dt, sub, integ in CANDIDATES:
        cfg = SceneConfig(physics=PhysicsConfig(timestep=dt, substeps=sub, integrator=integ), object=ball_for[dt])
        name = label(cfg.physics)
        if (dt, sub, integ) == (dp.timestep, dp.substeps, dp.integrator):
            cfg, name = default, name + " *"     # the library defaults, ball included
        runs = evaluate(cfg, clips, args.horizon, args.every)
        rows.append((name, cfg.object.contact_stiffness, summarise(runs)))
        if cfg is default:
            default_runs = runs
    if default_runs is None:
        default_runs = evaluate(default, clips, args.horizon, args.every)
        rows.append((label(dp) + " *", default.object.contact_stiffness, summarise(default_runs)))
    for variant in ("noself", "nothumb13"):
        rows.append((f"  ... {variant}", default.object.contact_stiffness,
                     summarise(evaluate(default, clips, args.horizon, args.every, variant))))
    print_table(rows)
    print("* = library defaults (PhysicsConfig, ObjectConfig); noself / nothumb13 rerun the defaults with "
          "self-collision off / Thumb1-Thumb3 excluded")

    total = sum(r.steps for r in default_runs)
    pairs = Counter()
    for r in default_runs:
        pairs.update(r.self_pairs)
    print(f"\nself-contact body pairs with the defaults ({label(default.physics)}), share of the "
          f"{total} control steps in which the pair touches:")
    for (a, b), n in pairs.most_common(args.top_pairs):
        print(f"  {a:>10s} - {b:<10s} {100 * n / total:5.1f}%")
    persistent = sorted(p for p, n in pairs.items() if n > 0.9 * total)
    print(f"pairs touching in > 90% of steps: {', '.join('-'.join(p) for p in persistent) or 'none'}")


if __name__ == "__main__":
    main()
