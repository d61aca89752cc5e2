"""Drop-test calibration of the ball's bounce.

Why: MuJoCo has no restitution coefficient. A contact is a damped spring whose
stiffness ``k`` and damping ``b`` (direct solref ``(-k, -b)``) set the bounce, and the
resulting coefficient of restitution also depends on the timestep and integrator
(the contact lasts only a few steps). So the defaults in ``ObjectConfig`` are found by
measurement on the very ball geom, floor and step of the scene, not by formula.

The drop test runs on the scene XML with everything but floor and ball stripped, so
geom settings, options and timestep are exactly those of ``build_scene_xml(cfg)``.

Two readings of the restitution are reported:

* ``apex``: ``sqrt(rebound apex above rest / drop height above rest)`` -- what a
  person measures with a ruler, and the number we calibrate to;
* ``velocity``: ``|v_out| / |v_in|`` at the moment the ball surface crosses the floor
  plane (speeds moved to ``z = radius`` along the ballistic energy line, so the
  discrete step position does not bias them).

``python -m skillmimic.assets.calibrate_ball`` prints the table for the current
defaults; ``--calibrate`` searches the damping for the target.
"""

from __future__ import annotations

import argparse
import copy
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace

import mujoco
import numpy as np

from .mjcf import SceneConfig, build_scene_xml

DEFAULT_HEIGHTS = (0.5, 1.0, 2.0)
# Calibrate on a dense sweep: with a contact a few steps long the bounce of a single drop
# depends on where in a step the ball meets the floor, so one height is a noisy sample.
CALIBRATION_HEIGHTS = tuple(round(0.3 + 0.1 * i, 2) for i in range(28))   # 0.3 ... 3.0 m
# Elements that may name humanoid bodies/joints; the ball-only model must drop them.
_HUMANOID_REFERRING = ("actuator", "sensor", "contact", "equality", "tendon", "keyframe")


@dataclass
class DropResult:
    drop_height: float        # m, release height of the centre above its resting height
    restitution: float        # apex definition
    restitution_velocity: float
    impact_speed: float       # m/s at z = radius
    max_penetration: float    # m, deepest floor penetration during the first impact
    contact_steps: int        # physics steps in contact during the first impact
    rest_height: float        # m, centre height at rest


def ball_drop_model(cfg: SceneConfig | None = None) -> mujoco.MjModel:
    """The scene with only floor and ball (the scene's object): same options, object geom and
    floor geom. The drop test calibrates spheres only (a box's bounce depends on how it lands)."""
    cfg = cfg or SceneConfig()
    if cfg.object.shape != "sphere":
        raise ValueError(f"the drop-test calibration needs a sphere object, got shape {cfg.object.shape!r}")
    root = ET.fromstring(build_scene_xml(cfg))
    world = root.find("worldbody")
    for el in world.findall("body") + world.findall("geom"):
        if el.get("name") not in ("object", "floor"):
            world.remove(el)
    for tag in _HUMANOID_REFERRING:
        for el in root.findall(tag):
            root.remove(el)
    return mujoco.MjModel.from_xml_string(ET.tostring(root, encoding="unicode"))


def _ball_qpos_adr(model: mujoco.MjModel) -> tuple[int, int]:
    jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, "object")
    return int(model.jnt_qposadr[jid]), int(model.jnt_dofadr[jid])


def rest_height(model: mujoco.MjModel, settle_time: float = 2.0) -> float:
    """Centre height of the ball lying on the floor (radius minus static sink).

    Averaged over the last half of ``settle_time``: a soft contact resolved in discrete
    steps can keep a sub-millimetre micro-bounce going instead of coming fully to rest.
    """
    data = mujoco.MjData(model)
    qa, _ = _ball_qpos_adr(model)
    radius = float(model.geom_size[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "object_geom"), 0])
    data.qpos[qa:qa + 3] = (0.0, 0.0, radius)
    data.qpos[qa + 3:qa + 7] = (1.0, 0.0, 0.0, 0.0)
    n = int(round(settle_time / model.opt.timestep))
    z = np.empty(n)
    for i in range(n):
        mujoco.mj_step(model, data)
        z[i] = data.qpos[qa + 2]
    return float(z[n // 2:].mean())


def _drop(model: mujoco.MjModel, height: float, rest: float, max_time: float = 6.0) -> DropResult:
    data = mujoco.MjData(model)
    qa, va = _ball_qpos_adr(model)
    g = -float(model.opt.gravity[2])
    radius = float(model.geom_size[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "object_geom"), 0])
    data.qpos[qa:qa + 3] = (0.0, 0.0, rest + height)
    data.qpos[qa + 3:qa + 7] = (1.0, 0.0, 0.0, 0.0)

    def speed_at_surface(z: float, vz: float) -> float:
        # move |v| along the ballistic energy line from height z to z = radius
        return math.sqrt(max(vz * vz + 2.0 * g * (z - radius), 0.0))

    phase = "fall"              # fall -> contact -> rise
    v_in = v_out = float("nan")
    last_z, last_vz = rest + height, 0.0
    max_pen, contact_steps, apex = 0.0, 0, -math.inf
    for _ in range(int(round(max_time / model.opt.timestep))):
        mujoco.mj_step(model, data)
        z, vz = float(data.qpos[qa + 2]), float(data.qvel[va + 2])
        if not np.isfinite(z):
            raise FloatingPointError(f"ball state became non-finite in a {height} m drop")
        touching = data.ncon > 0
        if phase == "fall" and touching:
            v_in = speed_at_surface(last_z, last_vz)
            phase = "contact"
        if phase == "contact":
            if touching:
                contact_steps += 1
                max_pen = max(max_pen, radius - z)
            else:
                v_out = speed_at_surface(z, vz)
                phase = "rise"
        if phase == "rise":
            if vz < 0.0 or data.ncon > 0:
                break
            apex = max(apex, z)
        last_z, last_vz = z, vz
    if phase != "rise" or not math.isfinite(apex):
        # the ball never left the floor (fully damped) -> no rebound at all
        apex = rest if phase != "fall" else math.nan
        v_out = 0.0 if phase != "fall" else math.nan
    return DropResult(
        drop_height=height,
        restitution=math.sqrt(max(apex - rest, 0.0) / height),
        restitution_velocity=v_out / v_in if v_in > 0 else math.nan,
        impact_speed=v_in,
        max_penetration=max_pen,
        contact_steps=contact_steps,
        rest_height=rest,
    )


def drop_test(cfg: SceneConfig | None = None, heights=DEFAULT_HEIGHTS) -> list[DropResult]:
    """Drop the ball from each height (of its centre above the resting height)."""
    model = ball_drop_model(cfg)
    rest = rest_height(model)
    return [_drop(model, float(h), rest) for h in heights]


def measure_restitution(cfg: SceneConfig | None = None, drop_height: float = 1.0) -> float:
    """Coefficient of restitution (apex definition) of one drop from ``drop_height`` m."""
    return drop_test(cfg, (drop_height,))[0].restitution


def _with_ball(cfg: SceneConfig, **changes) -> SceneConfig:
    out = copy.deepcopy(cfg)
    out.object = replace(out.object, **changes)
    return out


def _mean_restitution(cfg: SceneConfig, heights) -> float:
    return float(np.mean([r.restitution for r in drop_test(cfg, heights)]))


def calibrate(
    cfg: SceneConfig | None = None,
    target: float | None = None,
    heights=CALIBRATION_HEIGHTS,
    stiffness: float | None = None,
    tol: float = 1e-3,
    max_damping: float | None = None,
) -> SceneConfig:
    """Return ``cfg`` with the ball's ``contact_damping`` set so that the mean drop-test
    restitution over ``heights`` equals ``target`` (default ``cfg.object.restitution``).

    Restitution falls monotonically with damping while the contact spans enough steps,
    so bisection on ``b`` is enough; a bracket [0, 2 sqrt(k)] that does not contain the
    target (a stiffness too high for the timestep) raises ``ValueError``. The
    stiffness (``cfg.object.contact_stiffness`` unless given) is kept: it sets the
    penetration depth and, against the timestep, the stability.
    """
    cfg = copy.deepcopy(cfg or SceneConfig())
    target = cfg.object.restitution if target is None else float(target)
    k = cfg.object.contact_stiffness if stiffness is None else float(stiffness)
    # Critical damping (2 sqrt(k)) leaves no bounce; far beyond it the explicit
    # reference acceleration -b v overshoots within one step and launches the ball.
    lo, hi = 0.0, 2.0 * math.sqrt(k) if max_damping is None else float(max_damping)
    e_lo = _mean_restitution(_with_ball(cfg, contact_stiffness=k, contact_damping=lo), heights)
    e_hi = _mean_restitution(_with_ball(cfg, contact_stiffness=k, contact_damping=hi), heights)
    if not (e_hi <= target <= e_lo):
        raise ValueError(
            f"restitution {target} is out of reach with stiffness {k:g} at timestep "
            f"{cfg.physics.timestep:g} s: damping 0 gives {e_lo:.3f}, {hi:g} gives {e_hi:.3f}")
    while hi - lo > tol * max(1.0, lo):
        mid = 0.5 * (lo + hi)
        e = _mean_restitution(_with_ball(cfg, contact_stiffness=k, contact_damping=mid), heights)
        if e > target:
            lo = mid
        else:
            hi = mid
    return _with_ball(cfg, contact_stiffness=k, contact_damping=round(0.5 * (lo + hi), 3))


def settle(cfg: SceneConfig | None = None, drop_height: float = 5.0, duration: float = 20.0) -> tuple[float, float]:
    """Drop from ``drop_height`` and let the bounces die out: (final centre height, final speed).

    A ball that tunnels through the floor or keeps bouncing shows up here (a residual
    micro-bounce well under a millimetre, a few cm/s, is a known discrete-contact effect).
    """
    model = ball_drop_model(cfg)
    data = mujoco.MjData(model)
    qa, va = _ball_qpos_adr(model)
    data.qpos[qa:qa + 3] = (0.0, 0.0, rest_height(model) + drop_height)
    data.qpos[qa + 3:qa + 7] = (1.0, 0.0, 0.0, 0.0)
    for _ in range(int(round(duration / model.opt.timestep))):
        mujoco.mj_step(model, data)
    return float(data.qpos[qa + 2]), float(np.linalg.norm(data.qvel[va:va + 3]))


def format_table(results: list[DropResult]) -> str:
    lines = ["drop h (m)  impact v (m/s)  e (apex)  e (velocity)  max pen (cm)  contact steps"]
    for r in results:
        lines.append(f"{r.drop_height:10.2f}  {r.impact_speed:14.2f}  {r.restitution:8.3f}  "
                     f"{r.restitution_velocity:12.3f}  {100 * r.max_penetration:12.2f}  {r.contact_steps:13d}")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calibrate", action="store_true",
                        help="search the damping for --target over 0.3-3.0 m drops")
    parser.add_argument("--target", type=float, default=None, help="restitution (default: ObjectConfig)")
    parser.add_argument("--stiffness", type=float, default=None, help="contact stiffness k (1/s^2)")
    parser.add_argument("--damping", type=float, default=None, help="contact damping b (1/s)")
    parser.add_argument("--timestep", type=float, default=None, help="physics timestep (s)")
    parser.add_argument("--integrator", default=None)
    parser.add_argument("--heights", type=float, nargs="+", default=list(DEFAULT_HEIGHTS))
    args = parser.parse_args(argv)
    cfg = SceneConfig()
    if args.timestep is not None:
        cfg.physics.timestep = args.timestep
    if args.integrator is not None:
        cfg.physics.integrator = args.integrator
    if args.stiffness is not None:
        cfg.object.contact_stiffness = args.stiffness
    if args.damping is not None:
        cfg.object.contact_damping = args.damping
    if args.calibrate:
        cfg = calibrate(cfg, target=args.target)
    b = cfg.object
    print(f"timestep {cfg.physics.timestep:.6g} s ({cfg.physics.integrator}); ball r {b.size[0]} m, "
          f"mass {b.mass:.3f} kg, contact stiffness {b.contact_stiffness:g}, damping {b.contact_damping:g}")
    print(format_table(drop_test(cfg, args.heights)))
    sweep = [r.restitution for r in drop_test(cfg, CALIBRATION_HEIGHTS)]
    print(f"drops {CALIBRATION_HEIGHTS[0]}-{CALIBRATION_HEIGHTS[-1]} m every 0.1 m: e mean {np.mean(sweep):.3f}, "
          f"min {min(sweep):.3f}, max {max(sweep):.3f}")
    z, v = settle(cfg)
    print(f"dropped from 5 m, after 20 s: centre at z = {z:.4f} m (radius {b.size[0]}), speed {v:.2e} m/s")


if __name__ == "__main__":
    main()
