"""Build the MJCF models (humanoid, object, floor, scene) from the skeleton table.

Why code and not a hand-kept XML: the skeleton numbers live in one table, and the
physics knobs (timestep, integrator, the object's shape/mass/friction/bounce) come from typed
config, so the CPU and GPU engines, the viewer and the tests always load the same
model. ``python -m skillmimic.assets.mjcf`` writes the XML files under ``assets/``.

PD control: Isaac Gym's DOF position drive is ``kp (target - q) - kd qdot``. In MuJoCo
a joint ``stiffness`` is a passive spring about ``springref``, not a PD target, so each
hinge gets a ``position`` actuator with ``kp`` and ``kv`` from the table; the
``implicitfast`` integrator treats the ``kv`` damping implicitly, which is what keeps
the 10 g finger segments (kd/inertia ~ 500/s) stable at 120-240 Hz.
"""

from __future__ import annotations

import math
import pathlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from .objects import ObjectConfig, object_geom_attrs, object_mesh_attrs
from .skeleton import SKELETON_BALLPLAY, Skeleton

ASSET_DIR = pathlib.Path(__file__).resolve().parents[2] / "assets"

HINGE_AXES = {"x": "1 0 0", "y": "0 1 0", "z": "0 0 1"}


def _fmt(values) -> str:
    return " ".join(f"{float(v):.9g}" for v in values)


@dataclass
class PhysicsConfig:
    """Physics step. Control runs at ``1 / (timestep * substeps)`` Hz (60 Hz like the data).

    1/240 s x 4, implicitfast, chosen by ``benchmarks/physics_settings.py`` (open-loop PD
    replays of real clips; table in ``docs/physics.md``):

    * Euler explodes at 1/120 and 1/240: it integrates the position actuators' ``kv``
      explicitly, and a finger hinge (kv 10, armature 0.02) needs dt < 2 I / kv = 1/250 s.
      implicitfast treats kv implicitly; full ``implicit`` gives the same tracking at 3x cost.
    * Tracking barely depends on the step (first-step body error 1.4 / 1.0 / 0.8 cm at
      1/120, 1/240, 1/480), so the step is set by the ball: its contact is a spring that
      must last several steps for a consistent bounce. At 1/120 that forces a 10 cm
      penetration at 5 m/s; 1/240 allows 3 cm; 1/480 would allow ~2 cm at 1.9x the cost.
    * Cost: ~0.75 ms per 60 Hz control step single-threaded, 1.9x the original's 1/120 x 2.
    """

    timestep: float = 1.0 / 240.0
    substeps: int = 4
    integrator: str = "implicitfast"
    iterations: int = 20
    ls_iterations: int = 10
    cone: str = "pyramidal"
    # MuJoCo Warp capacity (ignored by MuJoCo C): contacts per world (pooled over all worlds)
    # and constraint rows per world (strict). Peaks measured over clip tracking, falls and
    # random-pose drops: 54 contacts, 216 rows in one world; ~2.4x headroom (docs/mjwarp.md).
    nconmax: int = 128
    njmax: int = 512

    @property
    def control_dt(self) -> float:
        return self.timestep * self.substeps


@dataclass
class HoopConfig:
    """A regulation basketball hoop (FIBA/NBA sizes): rim, backboard, pole, net-free.

    It is a mocap body, so every world can place its own hoop per episode (the HLC layup
    task does) through ``Simulator.set_hoop_pose``; the hoop frame's origin is the rim
    centre and its +x axis points from the backboard towards the court.
    """

    rim_height: float = 3.05
    rim_radius: float = 0.2286        # inner radius (18 in diameter)
    rim_tube_radius: float = 0.01
    rim_segments: int = 24
    board_width: float = 1.83
    board_height: float = 1.07
    board_thickness: float = 0.03
    board_rim_gap: float = 0.15       # backboard face to the nearest point of the rim
    board_above_rim: float = 0.85     # board top above the rim
    pole_radius: float = 0.08
    pole_setback: float = 1.0         # pole axis behind the backboard


@dataclass
class SceneConfig:
    physics: PhysicsConfig = field(default_factory=PhysicsConfig)
    # The rigid object (skillmimic/assets/objects.py); the default is the basketball.
    object: ObjectConfig = field(default_factory=ObjectConfig)
    floor_friction: float = 1.0
    self_collision: bool = True
    contact_sensors: bool = True
    hoop: HoopConfig | None = None
    # Hinge order of every joint: "table" = the skeleton's per-joint orders (chosen from the
    # data, skillmimic/assets/hinge_orders.py; docs/joints.md), or one Euler order for all
    # joints, e.g. "xyz" = the original's model. The motion library converts the reference
    # with the simulator's skeleton, so this one value switches assets, reference and FK.
    hinge_order: str = "table"


def scene_skeleton(cfg: SceneConfig | None = None, skel: Skeleton = SKELETON_BALLPLAY) -> Skeleton:
    """``skel`` with the hinge order of scene config ``cfg``."""
    return skel.with_hinge_order((cfg or SceneConfig()).hinge_order)


def _add_body(parent: ET.Element, skel: Skeleton, i: int, children: dict[int, list[int]]) -> None:
    name = skel.names[i]
    body = ET.SubElement(parent, "body", name=name, pos=_fmt(skel.offsets[i]))
    if skel.parents[i] < 0:
        ET.SubElement(body, "freejoint", name="root")
    else:
        # MuJoCo composes a body's joints in the order listed: R = R_first R_second R_third.
        for axis_name in skel.hinge_names(i - 1):
            ET.SubElement(body, "joint", name=f"{name}_{axis_name}", axis=HINGE_AXES[axis_name], **{"class": "hinge"})
    gtype, size, where, density = skel.geoms[i]
    attrs = {"type": gtype, "size": _fmt(size), "density": f"{density:.9g}", "class": "body"}
    if gtype == "capsule":
        attrs["fromto"] = _fmt(where)
    else:
        attrs["pos"] = _fmt(where)
    ET.SubElement(body, "geom", name=f"{name}_geom", **attrs)
    for child in children.get(i, []):
        _add_body(body, skel, child, children)


def humanoid_elements(skel: Skeleton = SKELETON_BALLPLAY) -> tuple[ET.Element, ET.Element]:
    """(body tree, actuator block) of the humanoid."""
    children: dict[int, list[int]] = {}
    for i, p in enumerate(skel.parents):
        children.setdefault(p, []).append(i)
    holder = ET.Element("worldbody")
    _add_body(holder, skel, children[-1][0], children)
    actuators = ET.Element("actuator")
    for i in range(1, skel.num_bodies):
        for axis_name in skel.hinge_names(i - 1):
            jname = f"{skel.names[i]}_{axis_name}"
            ET.SubElement(actuators, "position", name=jname, joint=jname, kp=f"{skel.kp[i]:.9g}",
                          kv=f"{skel.kd[i]:.9g}", **{"class": "hinge"})
    return holder[0], actuators


def build_scene_xml(cfg: SceneConfig | None = None, skel: Skeleton = SKELETON_BALLPLAY) -> str:
    """The full scene: floor, humanoid (hinge order: :func:`scene_skeleton`), object, contact sensors."""
    cfg = cfg or SceneConfig()
    skel = scene_skeleton(cfg, skel)
    ph = cfg.physics
    root = ET.Element("mujoco", model="skillmimic_ballplay")
    ET.SubElement(root, "compiler", angle="radian", autolimits="true")
    ET.SubElement(root, "option", timestep=f"{ph.timestep:.12g}", integrator=ph.integrator,
                  iterations=str(ph.iterations), ls_iterations=str(ph.ls_iterations), cone=ph.cone)
    ET.SubElement(root, "size", memory="8M")
    default = ET.SubElement(root, "default")
    hinge = ET.SubElement(default, "default", **{"class": "hinge"})
    # +-pi hinge limits, the original's: converted reference angles lie in [-pi, pi] (one
    # Euler decomposition per frame), like the PD targets (target = pi * action).
    ET.SubElement(hinge, "joint", type="hinge", armature="0.02", limited="true",
                  range=f"{-math.pi:.9g} {math.pi:.9g}")
    ET.SubElement(hinge, "position", ctrlrange=f"{-math.pi:.9g} {math.pi:.9g}")
    body_cls = ET.SubElement(default, "default", **{"class": "body"})
    # Collision bits: humanoid geoms contype 1; floor, object and hoop contype/conaffinity 3.
    # Humanoid conaffinity 1 turns self-collision on (the original's collision filter 0);
    # conaffinity 2 keeps humanoid-vs-world/object/hoop contacts but drops humanoid-vs-humanoid.
    ctype = "1"
    caff = "1" if cfg.self_collision else "2"
    ET.SubElement(body_cls, "geom", condim="3", friction="1 0.005 0.0001",
                  contype=ctype, conaffinity=caff, rgba="0.8 0.6 0.4 1")

    asset = ET.SubElement(root, "asset")
    ET.SubElement(asset, "texture", name="grid", type="2d", builtin="checker", rgb1=".25 .3 .35",
                  rgb2=".35 .4 .45", width="512", height="512", mark="edge", markrgb=".5 .5 .5")
    ET.SubElement(asset, "material", name="grid", texture="grid", texrepeat="20 20", reflectance="0.1")
    mesh = object_mesh_attrs(cfg.object)
    if mesh is not None:
        ET.SubElement(asset, "mesh", **mesh)

    world = ET.SubElement(root, "worldbody")
    ET.SubElement(world, "light", pos="0 0 6", dir="0 0 -1", directional="true")
    ET.SubElement(world, "geom", name="floor", type="plane", size="50 50 0.1", material="grid",
                  condim="3", friction=f"{cfg.floor_friction:.9g} 0.005 0.0001", contype="3", conaffinity="3")
    humanoid, actuators = humanoid_elements(skel)
    humanoid.set("pos", "0 0 1")
    world.append(humanoid)

    obj = ET.SubElement(world, "body", name="object", pos="0 0.5 1")
    ET.SubElement(obj, "freejoint", name="object")
    ET.SubElement(obj, "geom", **object_geom_attrs(cfg.object))
    if cfg.hoop is not None:
        _add_hoop(world, cfg.hoop)
    root.append(actuators)
    # Thumb1 and Thumb3 capsules overlap by ~0.5 mm at rest, so every step would report a
    # spurious self-contact (and a 2-7 N force in the fingertip observation); exclude them.
    contact = ET.SubElement(root, "contact")
    for side in "LR":
        ET.SubElement(contact, "exclude", body1=f"{side}_Thumb1", body2=f"{side}_Thumb3")

    if cfg.contact_sensors:
        sensor = ET.SubElement(root, "sensor")
        # Net contact force (world frame) acting ON each humanoid body and on the object: MuJoCo
        # reports the force on body2 from its partners (body1 would give the reaction).
        for name in (*skel.names, "object"):
            ET.SubElement(sensor, "contact", name=f"cf_{name}", body2=name, data="force",
                          reduce="netforce", num="1")
        ET.SubElement(sensor, "contact", name="object_floor", geom1="object_geom", geom2="floor", data="found")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode")


def _add_hoop(world: ET.Element, h: HoopConfig) -> None:
    """Rim as a ring of capsules, backboard box, pole; they collide with the object and the
    humanoid (mocap-vs-floor pairs are filtered by MuJoCo, so the pole costs no contacts)."""
    hoop = ET.SubElement(world, "body", name="hoop", mocap="true", pos=f"0 0 {h.rim_height:.9g}")
    ring = h.rim_radius + h.rim_tube_radius  # tube centre line
    for k in range(h.rim_segments):
        a0 = 2 * math.pi * k / h.rim_segments
        a1 = 2 * math.pi * (k + 1) / h.rim_segments
        ET.SubElement(hoop, "geom", name=f"rim_{k}", type="capsule", size=f"{h.rim_tube_radius:.9g}",
                      fromto=_fmt((ring * math.cos(a0), ring * math.sin(a0), 0, ring * math.cos(a1), ring * math.sin(a1), 0)),
                      rgba="0.95 0.35 0.05 1", contype="3", conaffinity="3", condim="3")
    board_x = -(h.rim_radius + 2 * h.rim_tube_radius + h.board_rim_gap) - h.board_thickness / 2
    board_z = h.board_above_rim - h.board_height / 2
    ET.SubElement(hoop, "geom", name="backboard", type="box",
                  size=_fmt((h.board_thickness / 2, h.board_width / 2, h.board_height / 2)),
                  pos=_fmt((board_x, 0, board_z)), rgba="0.9 0.9 0.95 0.6", contype="3", conaffinity="3", condim="3")
    # bracket from the board to the rim, and the pole down to the floor
    ET.SubElement(hoop, "geom", name="rim_bracket", type="box",
                  size=_fmt((h.board_rim_gap / 2, 0.05, 0.01)),
                  pos=_fmt((board_x + h.board_thickness / 2 + h.board_rim_gap / 2, 0, 0)), rgba="0.95 0.35 0.05 1",
                  contype="0", conaffinity="0")
    pole_x = board_x - h.pole_setback
    ET.SubElement(hoop, "geom", name="pole", type="capsule", size=f"{h.pole_radius:.9g}",
                  fromto=_fmt((pole_x, 0, -h.rim_height, pole_x, 0, board_z + h.board_height / 2)),
                  rgba="0.3 0.3 0.35 1", contype="3", conaffinity="3", condim="3")
    ET.SubElement(hoop, "geom", name="pole_arm", type="capsule", size="0.04",
                  fromto=_fmt((pole_x, 0, board_z, board_x - h.board_thickness / 2, 0, board_z)),
                  rgba="0.3 0.3 0.35 1", contype="3", conaffinity="3", condim="3")


def write_assets(out_dir: pathlib.Path = ASSET_DIR) -> list[pathlib.Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    header = "<!-- generated by `python -m skillmimic.assets.mjcf`; do not edit -->\n"
    paths = []
    for name, cfg in (("ballplay_scene.xml", SceneConfig()), ("ballplay_hoop_scene.xml", SceneConfig(hoop=HoopConfig()))):
        path = out_dir / name
        path.write_text(header + build_scene_xml(cfg) + "\n")
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in write_assets():
        print(f"wrote {p}")
