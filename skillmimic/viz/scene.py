"""What the video renderer and the interactive viewer share: posing the scene from a
:class:`~skillmimic.state.JointState`, the follow camera and the colour cues.

Colour cues (the original viewer's): the object is red while its contact flag is set and
green otherwise; the humanoid turns blue for 10 frames whenever the root spins faster than
5 rad/s, which flags mocap glitches and physics blow-ups at a glance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np
import torch

from ..assets.mjcf import SceneConfig, build_scene_xml
from ..assets.skeleton import SKELETON_BALLPLAY
from ..rotations import quat_normalize
from ..sim.base import SceneLayout
from ..state import JointState

OBJECT_CONTACT_RGBA = np.array([0.9, 0.1, 0.1, 1.0])
OBJECT_FREE_RGBA = np.array([0.1, 0.8, 0.2, 1.0])
ABNORMAL_RGBA = np.array([0.15, 0.3, 0.95, 1.0])
ABNORMAL_ROOT_SPIN = 5.0        # rad/s
ABNORMAL_FRAMES = 10


def scene_model(scene: SceneConfig | None = None, width: int = 640, height: int = 480) -> mujoco.MjModel:
    """A fresh MjModel of the simulation scene whose offscreen buffer fits ``width`` x ``height``
    (a private copy: colour cues edit its geom colours)."""
    model = mujoco.MjModel.from_xml_string(build_scene_xml(scene or SceneConfig(), SKELETON_BALLPLAY))
    model.vis.global_.offwidth = max(int(width), int(model.vis.global_.offwidth))
    model.vis.global_.offheight = max(int(height), int(model.vis.global_.offheight))
    # The scene's one overhead light leaves the floor and the humanoid's sides dark; a
    # brighter camera headlight keeps the figure readable without shadows (fast mode).
    model.vis.headlight.ambient[:] = 0.3
    model.vis.headlight.diffuse[:] = 0.6
    return model


def qpos_from_state(layout: SceneLayout, state: JointState) -> np.ndarray:
    """(N, nq) float64 qpos of ``state`` (positions only: enough to draw a frame)."""
    st = state.to("cpu", torch.float64)
    qpos = torch.zeros(st.num_worlds, layout.nq, dtype=torch.float64)
    qpos[:, layout.root_q] = torch.cat([st.root_pos, quat_normalize(st.root_quat)], -1)
    qpos[:, layout.dof_q] = st.dof_pos
    qpos[:, layout.obj_q] = torch.cat([st.obj_pos, quat_normalize(st.obj_quat)], -1)
    return qpos.numpy()


def pose(model: mujoco.MjModel, data: mujoco.MjData, qpos: np.ndarray) -> None:
    """Put ``data`` at ``qpos`` (one world) with body frames updated, no physics step."""
    data.qpos[:] = qpos
    data.qvel[:] = 0.0
    mujoco.mj_kinematics(model, data)


@dataclass
class FollowCamera:
    """A camera that keeps the humanoid and the object in the picture.

    The viewing direction is fixed (``azimuth``, ``elevation``: looking along +y and 20 deg
    down by default, the original viewer's side, high enough that the floor, not the sky,
    fills the background). Each frame the look-at point eases towards the centre of the
    subject's bounding box (``smoothing`` per frame), and the distance is the smallest that
    fits every subject point, padded by ``radius``, inside the frame with a ``margin`` --
    but at least ``min_distance``. The distance grows at once when a point would leave the
    frame (a thrown object) and shrinks back slowly (``relax`` per frame), so the picture does
    not pump. Points are inside by construction, whatever the smoothing lag.

    ``fovy`` and ``aspect`` must be the renderer's (MuJoCo's default fovy is 45 deg).
    """

    azimuth: float = 90.0          # deg; forward = (cos el cos az, cos el sin az, sin el)
    elevation: float = -20.0       # deg, negative looks down
    fovy: float = 45.0             # deg, vertical field of view
    aspect: float = 4 / 3          # width / height of the image
    margin: float = 0.08           # fraction of each half-extent kept free at the border
    radius: float = 0.15           # m, padding of each point (body geoms and the object have size)
    min_distance: float = 4.0      # m
    smoothing: float = 0.15        # look-at easing per frame (1: jump to the target)
    relax: float = 0.03            # distance shrink rate per frame
    look_height: float = 1.0       # viewer mode: look-at height while following the root

    def __post_init__(self):
        self._lookat: np.ndarray | None = None
        self._distance: float | None = None

    def reset(self) -> None:
        self._lookat = self._distance = None

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(forward, right, up) unit vectors of the viewing direction."""
        az, el = math.radians(self.azimuth), math.radians(self.elevation)
        fwd = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        right = np.cross(fwd, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        return fwd, right, np.cross(right, fwd)

    def fit_distance(self, lookat: np.ndarray, points: np.ndarray) -> float:
        """Smallest eye distance from ``lookat`` at which every point (N, 3), padded by
        ``radius``, lies inside the frame shrunk by ``margin``."""
        fwd, right, up = self.axes()
        v = np.asarray(points, dtype=np.float64).reshape(-1, 3) - lookat
        ty = math.tan(math.radians(self.fovy) / 2) * (1 - self.margin)
        tx = ty * self.aspect
        need_x = (np.abs(v @ right) + self.radius) / tx - v @ fwd
        need_y = (np.abs(v @ up) + self.radius) / ty - v @ fwd
        return float(max(need_x.max(), need_y.max(), self.min_distance))

    def update(self, cam: mujoco.MjvCamera, points) -> None:
        """Aim ``cam`` at the subject ``points`` (N, 3): humanoid bodies, object (and hoop)."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        target = (pts.min(0) + pts.max(0)) / 2
        if self._lookat is None:
            self._lookat = target
        else:
            self._lookat = self._lookat + self.smoothing * (target - self._lookat)
        need = self.fit_distance(self._lookat, pts)
        if self._distance is None or need >= self._distance:
            self._distance = need
        else:
            self._distance = max(need, self._distance + self.relax * (need - self._distance))
        self._apply(cam, self._lookat, self._distance)

    def _apply(self, cam: mujoco.MjvCamera, lookat, distance: float) -> None:
        cam.type = mujoco.mjtCamera.mjCAMERA_FREE
        cam.lookat[:] = lookat
        cam.distance = distance
        cam.azimuth = self.azimuth
        cam.elevation = self.elevation

    def follow(self, cam: mujoco.MjvCamera, root_pos) -> None:
        """Viewer variant: move the look-at point with the root, keep the user's angle/zoom."""
        cam.lookat[0], cam.lookat[1] = float(root_pos[0]), float(root_pos[1])
        cam.lookat[2] = self.look_height


def side_azimuth(root_xy: np.ndarray, default: float = 90.0, min_travel: float = 0.5) -> float:
    """Azimuth (deg) that looks at a clip from its side: perpendicular to the root's overall
    travel (first to last frame), so the motion crosses the picture instead of coming at
    the camera; ``default`` when the root travels less than ``min_travel`` m."""
    d = np.asarray(root_xy[-1], dtype=np.float64) - np.asarray(root_xy[0], dtype=np.float64)
    if float(np.linalg.norm(d)) < min_travel:
        return default
    # forward = travel rotated by +90 deg: the travel runs left to right on screen
    return math.degrees(math.atan2(d[0], -d[1]))


def subject_points(model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    """World positions of every humanoid body and the object (what the camera keeps in frame)."""
    obj = model.body("object").id
    ids = [b for b in range(1, model.nbody) if b == obj or model.body_mocapid[b] < 0]
    return data.xpos[ids]


def hoop_pose_for_clip(root_pos: np.ndarray, obj_pos: np.ndarray) -> tuple[np.ndarray, float]:
    """Where a regulation hoop goes in a clip recorded without one: rim centre over the
    ball's highest point, backboard beyond it, facing back along the root's travel (the
    hoop's +x, backboard -> court, points at the clip's start). Returns (rim xy, yaw rad)."""
    obj_pos, root_pos = np.asarray(obj_pos, np.float64), np.asarray(root_pos, np.float64)
    peak = obj_pos[int(np.argmax(obj_pos[:, 2])), :2]
    back = root_pos[0, :2] - peak
    if float(np.linalg.norm(back)) < 1e-6:
        back = np.array([1.0, 0.0])
    return peak, math.atan2(back[1], back[0])


def place_hoop(model: mujoco.MjModel, data: mujoco.MjData, rim_xy, yaw: float) -> np.ndarray:
    """Put the scene's hoop (a mocap body) with its rim centre over ``rim_xy`` and its +x at
    ``yaw``; returns the rim centre and the backboard's top centre (world, (2, 3))."""
    if model.nmocap == 0:
        raise ValueError("this scene has no hoop: build it with SceneConfig(hoop=HoopConfig())")
    mid = model.body_mocapid[model.body("hoop").id]
    rim = np.array([float(rim_xy[0]), float(rim_xy[1]), float(model.body("hoop").pos[2])])
    data.mocap_pos[mid] = rim
    data.mocap_quat[mid] = [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]
    mujoco.mj_kinematics(model, data)
    board = model.geom("backboard")
    top = data.geom_xpos[board.id] + data.geom_xmat[board.id].reshape(3, 3) @ np.array([0, 0, board.size[2]])
    return np.stack([rim, top])


class ColourCues:
    """Edits a model's geom colours per frame: object by contact flag, humanoid blue while abnormal."""

    def __init__(self, model: mujoco.MjModel):
        self.model = model
        self.object_geom = model.geom("object_geom").id
        object_body = model.body("object").id
        self.humanoid_geoms = np.array([g for g in range(model.ngeom)
                                        if model.geom_bodyid[g] not in (0, object_body)
                                        and model.body_mocapid[model.geom_bodyid[g]] < 0], dtype=np.int64)
        self.humanoid_rgba = model.geom_rgba[self.humanoid_geoms].copy()
        self._abnormal_left = 0

    def apply(self, obj_contact: bool, root_ang_vel=None) -> None:
        self.model.geom_rgba[self.object_geom] = OBJECT_CONTACT_RGBA if obj_contact else OBJECT_FREE_RGBA
        if root_ang_vel is not None and float(np.linalg.norm(np.asarray(root_ang_vel))) > ABNORMAL_ROOT_SPIN:
            self._abnormal_left = ABNORMAL_FRAMES
        if self._abnormal_left > 0:
            self.model.geom_rgba[self.humanoid_geoms] = ABNORMAL_RGBA
            self._abnormal_left -= 1
        else:
            self.model.geom_rgba[self.humanoid_geoms] = self.humanoid_rgba

    def reset(self) -> None:
        self._abnormal_left = 0


__all__ = ["OBJECT_CONTACT_RGBA", "OBJECT_FREE_RGBA", "ABNORMAL_RGBA", "scene_model", "qpos_from_state", "pose",
           "FollowCamera", "ColourCues", "side_azimuth", "subject_points", "hoop_pose_for_clip", "place_hoop"]
