"""What the video renderer and the interactive viewer share: posing the scene from a
:class:`~skillmimic.state.JointState`, the follow camera and the colour cues.

Colour cues (the original viewer's): the ball is red while its contact flag is set and
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

BALL_CONTACT_RGBA = np.array([0.9, 0.1, 0.1, 1.0])
BALL_FREE_RGBA = np.array([0.1, 0.8, 0.2, 1.0])
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
    qpos[:, layout.ball_q] = torch.cat([st.ball_pos, quat_normalize(st.ball_quat)], -1)
    return qpos.numpy()


def pose(model: mujoco.MjModel, data: mujoco.MjData, qpos: np.ndarray) -> None:
    """Put ``data`` at ``qpos`` (one world) with body frames updated, no physics step."""
    data.qpos[:] = qpos
    data.qvel[:] = 0.0
    mujoco.mj_kinematics(model, data)


@dataclass
class FollowCamera:
    """Eye at root_xy + (dx, dy) and a fixed height, looking at (root_xy, look_height).
    The original viewer's framing was 3 m along -y, 1.5 m up, looking at 1 m; 4 m keeps
    a raised arm and a shot's ball in the picture. The height is fixed so the picture
    does not bob with the pelvis."""

    offset_xy: tuple[float, float] = (0.0, -4.0)
    eye_height: float = 1.5
    look_height: float = 1.0

    def place(self, cam: mujoco.MjvCamera, root_pos) -> None:
        rx, ry = float(root_pos[0]), float(root_pos[1])
        eye = np.array([rx + self.offset_xy[0], ry + self.offset_xy[1], self.eye_height])
        target = np.array([rx, ry, self.look_height])
        fwd = target - eye
        dist = float(np.linalg.norm(fwd))
        cam.type = mujoco.mjtCamera.mjCAMERA_FREE
        cam.lookat[:] = target
        cam.distance = dist
        cam.azimuth = math.degrees(math.atan2(fwd[1], fwd[0]))
        cam.elevation = math.degrees(math.asin(fwd[2] / dist))

    def follow(self, cam: mujoco.MjvCamera, root_pos) -> None:
        """Viewer variant: move the look-at point with the root, keep the user's angle/zoom."""
        cam.lookat[0], cam.lookat[1] = float(root_pos[0]), float(root_pos[1])
        cam.lookat[2] = self.look_height


class ColourCues:
    """Edits a model's geom colours per frame: ball by contact flag, humanoid blue while abnormal."""

    def __init__(self, model: mujoco.MjModel):
        self.model = model
        self.ball_geom = model.geom("ball_geom").id
        ball_body = model.body("ball").id
        self.humanoid_geoms = np.array([g for g in range(model.ngeom)
                                        if model.geom_bodyid[g] not in (0, ball_body)], dtype=np.int64)
        self.humanoid_rgba = model.geom_rgba[self.humanoid_geoms].copy()
        self._abnormal_left = 0

    def apply(self, ball_contact: bool, root_ang_vel=None) -> None:
        self.model.geom_rgba[self.ball_geom] = BALL_CONTACT_RGBA if ball_contact else BALL_FREE_RGBA
        if root_ang_vel is not None and float(np.linalg.norm(np.asarray(root_ang_vel))) > ABNORMAL_ROOT_SPIN:
            self._abnormal_left = ABNORMAL_FRAMES
        if self._abnormal_left > 0:
            self.model.geom_rgba[self.humanoid_geoms] = ABNORMAL_RGBA
            self._abnormal_left -= 1
        else:
            self.model.geom_rgba[self.humanoid_geoms] = self.humanoid_rgba

    def reset(self) -> None:
        self._abnormal_left = 0


__all__ = ["BALL_CONTACT_RGBA", "BALL_FREE_RGBA", "ABNORMAL_RGBA", "scene_model", "qpos_from_state", "pose",
           "FollowCamera", "ColourCues"]
