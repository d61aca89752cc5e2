"""Open-loop PD replay on the frames that gimbal lock spoilt, before and after per-joint hinge orders.

Under X-Y-Z hinges (the original's), shoulders and elbows pass near the Euler singularity
and the converted reference (then made continuous in time and left without joint limits)
had hinge angles beyond +-pi on ~10 % of the frames. PD targets live in +-pi, so a world
reset onto such a frame is pulled a whole turn round. This replays every start frame of
the clips open loop -- reference state at frame s (velocities by central differences),
free root, PD targets = reference hinge angles of frames s+1, s+2, ... -- and reports the
mean wrist distance from the reference after 1 and 4 control steps, separately for the
start frames that had a hinge angle beyond +-pi under the old conversion on the wrists'
chain (spine, thorax, shoulder, elbow, wrist; what moves a wrist), for the frames with one
beyond +-pi elsewhere only (fingers), and for the rest:

* ``xyz, unwrapped`` -- before: X-Y-Z, angles unwrapped in time and recentred per clip, no
  hinge limits (the library up to this change);
* ``xyz`` -- X-Y-Z with today's conversion (one Euler decomposition per frame, [-pi, pi],
  +-pi hinge limits): ``sim.scene.hinge_order=xyz``;
* ``table`` -- the skeleton table's per-joint orders (the default).

    python benchmarks/hinge_orders.py [--motions ../shared/data/motions/BallPlay-M] [--every 3]
"""

from __future__ import annotations

import argparse
import math
import pathlib
import xml.etree.ElementTree as ET

import mujoco
import numpy as np
import torch

from physics_settings import Scene
from skillmimic.assets.mjcf import SceneConfig, build_scene_xml
from skillmimic.assets.skeleton import SKELETON_BALLPLAY as SK
from skillmimic.motion.io import find_clips, load_clip

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_MOTIONS = REPO.parent / "shared" / "data" / "motions" / "BallPlay-M"
STEPS = (1, 4)


class UnwrappedXYZ(Scene):
    """The model before per-joint orders: X-Y-Z, unlimited hinges, angles unwrapped in time
    and shifted per clip by whole turns so that each clip's mean lies in [-pi, pi]."""

    def __init__(self):
        cfg = SceneConfig(hinge_order="xyz")
        super().__init__(cfg)
        root = ET.fromstring(build_scene_xml(cfg))
        root.find("default/default[@class='hinge']/joint").set("limited", "false")
        self.model = mujoco.MjModel.from_xml_string(ET.tostring(root, encoding="unicode"))

    def reference_qpos(self, clip: np.ndarray) -> np.ndarray:
        qpos = super().reference_qpos(clip)
        h = np.unwrap(qpos[:, self.hinge_qpos], axis=0)
        qpos[:, self.hinge_qpos] = h - 2 * np.pi * np.round(h.mean(0, keepdims=True) / (2 * np.pi))
        return qpos


def _ancestor_joints(body: int) -> list[int]:
    """Joints (body index - 1) on the path from the root to skeleton body ``body``."""
    out = []
    while body > 0:
        out.append(body - 1)
        body = SK.parents[body]
    return out


def wrist_errors(scene: Scene, qpos: np.ndarray, body: np.ndarray, starts, wrists) -> np.ndarray:
    """(len(starts), len(STEPS)) mean wrist distance from the reference after each of STEPS."""
    m, ph = scene.model, scene.cfg.physics
    data = mujoco.MjData(m)
    out = np.full((len(starts), len(STEPS)), np.nan)
    for i, s in enumerate(starts):
        mujoco.mj_resetData(m, data)
        data.qpos[:] = qpos[s]
        data.qvel[:] = scene.reference_qvel(qpos, s)
        for k in range(1, max(STEPS) + 1):
            data.ctrl[:] = np.clip(qpos[s + k, scene.hinge_qpos], -np.pi, np.pi)
            for _ in range(ph.substeps):
                mujoco.mj_step(m, data)
            if k in STEPS:
                err = np.linalg.norm(data.xpos[wrists] - body[s + k, wrists - 1], axis=-1).mean()
                out[i, STEPS.index(k)] = err
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--motions", type=pathlib.Path, default=DEFAULT_MOTIONS)
    parser.add_argument("--every", type=int, default=3, help="start-frame spacing within a clip")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    before = UnwrappedXYZ()
    scenes = {"xyz, unwrapped": before, "xyz": Scene(SceneConfig(hinge_order="xyz")),
              "table": Scene(SceneConfig())}
    wrists = np.array([mujoco.mj_name2id(before.model, mujoco.mjtObj.mjOBJ_BODY, n) for n in ("L_Wrist", "R_Wrist")])
    errs = {name: [] for name in scenes}
    chain = sorted({j for w in wrists for j in _ancestor_joints(int(w) - 1)})
    cols = np.array([3 * j + k for j in chain for k in range(3)])
    flagged, flagged_any = [], []
    files = find_clips(args.motions)
    for f in files:
        clip = load_clip(f).double().numpy()
        valid = ~(clip == 0).all(-1)
        old = before.reference_qpos(clip)
        starts = [s for s in range(2, len(clip) - max(STEPS) - 1, args.every) if valid[s:s + max(STEPS) + 1].all()]
        if not starts:
            continue
        beyond = np.abs(old[starts][:, before.hinge_qpos]) > math.pi
        flagged.append(beyond[:, cols].any(-1))
        flagged_any.append(beyond.any(-1))
        for name, scene in scenes.items():
            qpos = old if scene is before else scene.reference_qpos(clip)
            errs[name].append(wrist_errors(scene, qpos, scene.reference_body_pos(qpos), starts, wrists))
    arm, any_ = np.concatenate(flagged), np.concatenate(flagged_any)
    groups = {"wrist chain > pi": arm, "fingers > pi only": any_ & ~arm, "other frames": ~any_}
    print(f"{len(files)} clips under {args.motions}, start frames every {args.every}: {len(arm)} replays; "
          f"frames with a hinge beyond +-pi under X-Y-Z unwrapped: {any_.sum()} ({100 * any_.mean():.1f} %), "
          f"{arm.sum()} of them on the wrists' chain")
    print(f"mean wrist error (cm) after {' / '.join(map(str, STEPS))} control steps (60 Hz), (replays):")
    print(f"{'model':<16}" + "".join(f"{f'{g} ({m.sum()})':>26}" for g, m in groups.items()))
    for name in scenes:
        e = np.concatenate(errs[name]) * 100
        print(f"{name:<16}" + "".join(f"{' / '.join(f'{v:6.2f}' for v in e[m].mean(0)):>26}" for m in groups.values()))


if __name__ == "__main__":
    main()
