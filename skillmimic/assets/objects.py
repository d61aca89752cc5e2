"""The rigid object the humanoid interacts with, described by config.

Why one entity: the scene has exactly one free rigid body besides the humanoid -- the
basketball for BallPlay, a box for the box-carry demo -- and every floor above the assets
(state, simulator, observations, reward, motion columns, eval, viz) treats it the same
way: a pose, a velocity, a net contact force and a floor-contact flag. Only its geometry
and material differ, and those live here. In the MJCF it is always the body (and free
joint) ``object`` with the geom ``object_geom``; ``name`` is a label for people.

Contact model: MuJoCo has no restitution coefficient. The object's geom carries
``priority="1"``, so its friction and its direct solref ``(-contact_stiffness,
-contact_damping)`` govern every contact it takes part in (floor, hands, hoop). For the
default sphere those two numbers are *calibrated* to ``restitution`` by the drop test of
:mod:`skillmimic.assets.calibrate_ball` at the default physics step. For other shapes the
same solref is used, but the bounce of a box or a capsule depends on which face, edge or
corner lands, so ``restitution`` is only a target there: the numbers are not calibrated
for non-spherical shapes (recalibrate the damping for a sphere of similar size and mass
if the bounce matters; a carried box rarely bounces).
"""

from __future__ import annotations

import math
import pathlib
from dataclasses import dataclass, field
from typing import List, Optional

#: shape -> what ``size`` holds (MuJoCo's geom size convention: half-sizes)
SHAPE_SIZES = {
    "sphere": ("radius",),
    "box": ("half x", "half y", "half z"),
    "capsule": ("radius", "half length"),
    "cylinder": ("radius", "half length"),
    "mesh": ("scale",),          # one uniform scale, or three per-axis scales
}
MESH_SUFFIXES = (".obj", ".stl")
_REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


class ObjectConfigError(ValueError):
    """An object config that cannot be built (names the key and the value)."""


@dataclass
class ObjectConfig:
    """One rigid object. Defaults: the basketball, with the original's *effective* values.

    The original URDF has no inertial, so Isaac Gym derived the mass from
    ``ballDensity: 1000`` -> 7.24 kg for r = 0.12 m. ``restitution`` is the target
    coefficient of restitution; ``contact_stiffness``/``contact_damping`` are the
    MuJoCo direct solref (-k, -b) that realise it, calibrated by
    ``python -m skillmimic.assets.calibrate_ball --calibrate`` (drop test) for the
    default physics step: at 1/240 s, k = 20000 keeps every drop from 0.3-3 m within
    0.77-0.83 with 3 cm penetration at 5 m/s. A real ball's stiffness (k ~ 8e4,
    ~1.5 cm) bounces 0.76-1.04 depending on where in a step it lands, and at 1/120 s
    only k <= 2000 (10 cm penetration) is consistent; see ``docs/physics.md``.
    Recalibrate after changing the timestep. Other shapes reuse the solref
    uncalibrated (module docstring).

    ``size`` follows MuJoCo's geom convention, per ``shape`` (:data:`SHAPE_SIZES`):
    sphere [radius], box [half x, half y, half z], capsule/cylinder [radius, half length]
    (axis along the body's z), mesh [scale] or [sx, sy, sz] of ``mesh_file`` (.obj/.stl;
    relative paths: the working directory, else the repository root; the file's frame is
    the object's frame, so its origin is the position the clips' object columns give).
    """

    name: str = "basketball"
    shape: str = "sphere"
    size: List[float] = field(default_factory=lambda: [0.12])
    mesh_file: Optional[str] = None
    mass: float = 4.0 / 3.0 * math.pi * 0.12**3 * 1000.0
    friction: float = 1.0
    restitution: float = 0.8
    contact_stiffness: float = 20000.0
    contact_damping: float = 21.018

    def validate(self) -> None:
        """Raise :class:`ObjectConfigError` naming the bad key (``sim.scene.object.<key>``)."""
        key = "sim.scene.object"
        if self.shape not in SHAPE_SIZES:
            raise ObjectConfigError(f"{key}.shape must be one of {', '.join(SHAPE_SIZES)}, got {self.shape!r}")
        size = [float(s) for s in self.size]
        want = SHAPE_SIZES[self.shape]
        counts = (1, 3) if self.shape == "mesh" else (len(want),)
        if len(size) not in counts or not all(math.isfinite(s) and s > 0 for s in size):
            raise ObjectConfigError(f"{key}.size for a {self.shape} must be {len(want) if len(counts) == 1 else '1 or 3'} "
                                    f"positive number(s) ({', '.join(want)}), got {list(self.size)}")
        for attr, low in (("mass", 0), ("contact_stiffness", 0), ("contact_damping", None), ("friction", None)):
            value = float(getattr(self, attr))
            if not math.isfinite(value) or value < 0 or (low is not None and value <= low):
                raise ObjectConfigError(f"{key}.{attr} must be {'> 0' if low is not None else '>= 0'}, got {value}")
        if self.shape == "mesh":
            self.mesh_path()
        elif self.mesh_file:
            raise ObjectConfigError(f"{key}.mesh_file is set ({self.mesh_file!r}) but shape is {self.shape!r}; "
                                    f"use shape=mesh")

    def mesh_path(self) -> pathlib.Path:
        """The resolved mesh file (shape ``mesh``); a missing or unsupported file is an error."""
        if not self.mesh_file:
            raise ObjectConfigError("sim.scene.object.mesh_file must name an .obj or .stl file for shape=mesh")
        p = pathlib.Path(self.mesh_file).expanduser()
        if not p.is_absolute() and not p.exists():
            p = _REPO_ROOT / p
        if p.suffix.lower() not in MESH_SUFFIXES:
            raise ObjectConfigError(f"sim.scene.object.mesh_file={self.mesh_file!r}: MuJoCo loads "
                                    f"{' or '.join(MESH_SUFFIXES)} meshes here")
        if not p.is_file():
            raise ObjectConfigError(f"sim.scene.object.mesh_file={self.mesh_file!r} is not a file")
        return p.resolve()

    def resting_height(self) -> float:
        """Height of the centre when the object rests upright (identity rotation) on the floor."""
        self.validate()
        s = [float(v) for v in self.size]
        if self.shape == "sphere":
            return s[0]
        if self.shape == "box":
            return s[2]
        if self.shape == "capsule":
            return s[0] + s[1]
        if self.shape == "cylinder":
            return s[1]
        return _mesh_resting_height(self)


#: where the scene's object lived before the object entity (a sphere: radius, mass, friction,
#: restitution, contact stiffness/damping); checkpoints of that time carry it in their run config
LEGACY_SCENE_KEY = "sim.scene.ball"


def upgrade_legacy_scene(scene: dict) -> dict:
    """A scene config dict with a ball-era ``ball`` node turned into the ``object`` node of
    the same sphere (``radius`` -> ``size: [radius]``, the other numbers unchanged)."""
    if "ball" not in scene:
        return scene
    if "object" in scene:
        raise ObjectConfigError(f"a run configuration has both {LEGACY_SCENE_KEY} (old) and sim.scene.object; "
                                f"keep sim.scene.object")
    scene = dict(scene)
    ball = dict(scene.pop("ball") or {})
    obj = {"name": "basketball", "shape": "sphere"}
    if "radius" in ball:
        obj["size"] = [ball.pop("radius")]
    obj.update(ball)
    scene["object"] = obj
    return scene


def _fmt(values) -> str:
    return " ".join(f"{float(v):.9g}" for v in values)


def object_geom_attrs(obj: ObjectConfig) -> dict[str, str]:
    """MJCF attributes of the object's geom (type, size or mesh, mass, contact material).

    priority 1: the object's friction and solref decide every contact it takes part in."""
    obj.validate()
    attrs = {"name": "object_geom", "type": obj.shape}
    if obj.shape == "mesh":
        attrs["mesh"] = "object_mesh"
    else:
        attrs["size"] = _fmt(obj.size)
    attrs.update(mass=f"{obj.mass:.9g}", condim="3", priority="1", contype="3", conaffinity="3",
                 friction=f"{obj.friction:.9g} 0.005 0.0001",
                 solref=f"{-obj.contact_stiffness:.9g} {-obj.contact_damping:.9g}",
                 rgba="0.9 0.45 0.1 1")
    return attrs


def object_mesh_attrs(obj: ObjectConfig) -> dict[str, str] | None:
    """MJCF ``<mesh>`` asset attributes for a mesh object, else None."""
    if obj.shape != "mesh":
        return None
    scale = [float(v) for v in obj.size] * (3 if len(obj.size) == 1 else 1)
    return {"name": "object_mesh", "file": str(obj.mesh_path()), "scale": _fmt(scale)}


def _mesh_resting_height(obj: ObjectConfig) -> float:
    """Depth of the compiled mesh's lowest vertex below the body origin. The file's frame is
    the object's frame (MuJoCo re-centres a mesh internally and compensates in the geom
    pose), so this is the file's lowest z times the scale, read back from the model."""
    import xml.etree.ElementTree as ET

    import mujoco
    import numpy as np

    root = ET.Element("mujoco")
    asset = ET.SubElement(root, "asset")
    ET.SubElement(asset, "mesh", **object_mesh_attrs(obj))
    body = ET.SubElement(ET.SubElement(root, "worldbody"), "body", name="object")
    ET.SubElement(body, "freejoint")
    ET.SubElement(body, "geom", **object_geom_attrs(obj))
    model = mujoco.MjModel.from_xml_string(ET.tostring(root, encoding="unicode"))
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    g = model.geom("object_geom")
    m = int(model.geom_dataid[g.id])
    verts = model.mesh_vert[model.mesh_vertadr[m]:model.mesh_vertadr[m] + model.mesh_vertnum[m]]
    world = data.geom_xpos[g.id] + verts @ data.geom_xmat[g.id].reshape(3, 3).T
    return float(-np.min(world[:, 2]))


__all__ = ["LEGACY_SCENE_KEY", "ObjectConfig", "ObjectConfigError", "SHAPE_SIZES", "object_geom_attrs",
           "object_mesh_attrs", "upgrade_legacy_scene"]
