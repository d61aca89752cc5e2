"""Headless MP4 rendering of dataset clips: the file decodes, has every frame, and shows the
humanoid and a ball coloured by the contact flag. Scene posing/camera/colour cues are
checked without GL too."""

from __future__ import annotations

import pathlib

import mujoco
import numpy as np
import pytest
import torch

from skillmimic.motion import MotionLibrary
from skillmimic.sim.base import SceneLayout
from skillmimic.assets.skeleton import SKELETON_BALLPLAY
from skillmimic.viz import gl
from skillmimic.viz.render import clip_frames, main as render_main, render_frames
from skillmimic.viz.scene import (
    ABNORMAL_RGBA, BALL_CONTACT_RGBA, BALL_FREE_RGBA, ColourCues, FollowCamera, pose, qpos_from_state, scene_model,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "motions"
LAYUP = SHARED / "BallPlay-M" / "layup"
DEMO_DRIBBLE = ROOT / "data" / "motions" / "demo" / "013_demo_dribble_1.pt"
# The shared layup when it is there; otherwise the repository's own dribble demo clip (both
# have frames with and without hand-ball contact).
CLIP = LAYUP if LAYUP.exists() else DEMO_DRIBBLE if DEMO_DRIBBLE.exists() else None
W, H = 320, 240


@pytest.fixture(scope="module")
def motion():
    if CLIP is None:
        pytest.skip("neither the shared BallPlay data nor the demo clips are present")
    return MotionLibrary(CLIP)


@pytest.fixture(scope="module")
def gl_backend():
    name, message = gl.probe()
    if name is None:
        pytest.skip(f"no headless OpenGL backend can be had here: {message}")
    return name


def decode(path: pathlib.Path) -> tuple[dict, list[np.ndarray]]:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    frames = [np.frombuffer(buf, np.uint8).reshape(h, w, 3).astype(np.int16) for buf in reader]
    return meta, frames


def humanoid_pixels(img) -> int:
    """Skin-tone pixels: the humanoid's geoms are tan (r > g > b); the floor is blue-grey,
    the ball pure red or green."""
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    return int(((r > g + 10) & (g > b + 15) & (g > 50)).sum())


def red_pixels(img) -> int:
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    return int(((r > 120) & (g < 70) & (b < 70)).sum())


def green_pixels(img) -> int:
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    return int(((g > 100) & (r < 80) & (b < 90)).sum())


# ----------------------------------------------------------------------------- with GL
def test_clip_renders_to_decodable_mp4_with_humanoid_and_contact_coloured_ball(motion, gl_backend, tmp_path):
    frames = clip_frames(motion, 0)
    contact = np.array([f.ball_contact for f in frames])
    # 10 frames with the hand on the ball and 10 without (the dribble bounce), in clip order
    picked = sorted(np.flatnonzero(contact)[10:20].tolist() + np.flatnonzero(~contact)[:10].tolist())
    assert len(picked) == 20
    out = tmp_path / "clip.mp4"
    stats = render_frames([frames[i] for i in picked], out, total=len(picked), width=W, height=H, progress=False)
    assert stats.frames == 20 and out.stat().st_size > 1000

    meta, video = decode(out)
    assert tuple(meta["size"]) == (W, H) and meta["codec"] == "h264"
    assert len(video) == 20
    for k, (i, img) in enumerate(zip(picked, video)):
        assert img.std() > 10, f"frame {k} looks blank (std {img.std():.1f})"
        assert humanoid_pixels(img) > 0.005 * W * H, f"frame {k}: no humanoid in view"
        if contact[i]:
            assert red_pixels(img) > 20 and green_pixels(img) < 5, f"frame {k}: contact frame must show a red ball"
        else:
            assert green_pixels(img) > 20 and red_pixels(img) < 5, f"frame {k}: free ball must be green"


def test_cli_clip_mode(motion, gl_backend, tmp_path, capsys):
    out = tmp_path / "cli.mp4"
    rc = render_main(["clip", str(CLIP), "--out", str(out), "--frames", "6", "--start", "100",
                      "--width", "160", "--height", "120", "--no-progress"])
    assert rc == 0
    assert "6 frames" in capsys.readouterr().out
    meta, video = decode(out)
    assert len(video) == 6 and tuple(meta["size"]) == (160, 120)
    assert all(img.std() > 5 for img in video)


def test_policy_rollout_renders_one_frame_per_step(motion, gl_backend, tmp_path):
    from envs import SkillEnv, SkillEnvConfig
    from skillmimic.sim.mujoco_cpu import MujocoCPUSimulator
    from skillmimic.viz.render import render_policy

    env = SkillEnv(SkillEnvConfig(num_envs=2, seed=0, state_init=2), motion, MujocoCPUSimulator(2))
    env.reset()
    out = tmp_path / "policy.mp4"
    try:
        stats = render_policy(env, lambda obs: torch.zeros(obs.shape[0], 156), out, steps=5, env_id=1,
                              width=160, height=120, progress=False)
    finally:
        env.close()
    assert stats.frames == 6 and int(env.progress[1]) == 5
    _, video = decode(out)
    assert len(video) == 6 and all(humanoid_pixels(img) > 0.005 * 160 * 120 for img in video)


# ----------------------------------------------------------------------------- without GL
def test_posed_scene_matches_reference_forward_kinematics(motion):
    """What the renderer draws is the reference: MuJoCo's body frames of the posed model equal
    the motion library's forward kinematics for every body and the ball."""
    model = scene_model(width=W, height=H)
    layout = SceneLayout.from_model(model, SKELETON_BALLPLAY)
    data = mujoco.MjData(model)
    ref = motion.clip_frames(0)
    qpos = qpos_from_state(layout, ref.state)
    body_ids = [model.body(n).id for n in SKELETON_BALLPLAY.names]
    for i in (0, 57, 120):
        pose(model, data, qpos[i])
        np.testing.assert_allclose(data.xpos[body_ids], ref.body_pos[i].numpy(), atol=2e-4)
        np.testing.assert_allclose(data.xpos[model.body("ball").id], ref.state.ball_pos[i].numpy(), atol=1e-5)


def test_follow_camera_eye_and_target():
    model = scene_model(width=W, height=H)
    data = mujoco.MjData(model)
    data.qpos[:3] = [2.0, -1.0, 0.9]
    mujoco.mj_kinematics(model, data)
    cam, scn, opt = mujoco.MjvCamera(), mujoco.MjvScene(model, 500), mujoco.MjvOption()
    FollowCamera(offset_xy=(0.0, -4.0), eye_height=1.5, look_height=1.0).place(cam, data.qpos[:3])
    mujoco.mjv_updateScene(model, data, opt, None, cam, mujoco.mjtCatBit.mjCAT_ALL, scn)
    eye = (np.array(scn.camera[0].pos) + np.array(scn.camera[1].pos)) / 2
    np.testing.assert_allclose(eye, [2.0, -5.0, 1.5], atol=1e-4)
    fwd = np.array(scn.camera[0].forward)
    np.testing.assert_allclose(fwd, np.array([0.0, 4.0, -0.5]) / np.hypot(4.0, 0.5), atol=1e-4)


def test_colour_cues():
    model = scene_model(width=W, height=H)
    cues = ColourCues(model)
    ball = model.geom("ball_geom").id
    body_rgba = model.geom_rgba[cues.humanoid_geoms].copy()
    assert len(cues.humanoid_geoms) == len(SKELETON_BALLPLAY.names)
    cues.apply(True)
    np.testing.assert_allclose(model.geom_rgba[ball], BALL_CONTACT_RGBA)
    cues.apply(False, root_ang_vel=[0.0, 0.0, 1.0])
    np.testing.assert_allclose(model.geom_rgba[ball], BALL_FREE_RGBA)
    np.testing.assert_allclose(model.geom_rgba[cues.humanoid_geoms], body_rgba)
    cues.apply(False, root_ang_vel=torch.tensor([6.0, 0.0, 0.0]).numpy())     # spinning: blue for 10 frames
    for _ in range(9):
        np.testing.assert_allclose(model.geom_rgba[cues.humanoid_geoms[0]], ABNORMAL_RGBA)
        cues.apply(False, root_ang_vel=[0.0, 0.0, 0.0])
    cues.apply(False, root_ang_vel=[0.0, 0.0, 0.0])
    np.testing.assert_allclose(model.geom_rgba[cues.humanoid_geoms], body_rgba)
