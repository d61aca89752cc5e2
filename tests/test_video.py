"""Headless MP4 rendering of dataset clips: the file decodes, has every frame, and shows the
humanoid and a ball coloured by the contact flag. Scene posing/camera/colour cues are
checked without GL too."""

from __future__ import annotations

import math
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
    ABNORMAL_RGBA, OBJECT_CONTACT_RGBA, OBJECT_FREE_RGBA, ColourCues, FollowCamera, pose, qpos_from_state, scene_model,
)

from helpers import DEMO, REPO as ROOT, SHARED_MOTIONS as SHARED
LAYUP = SHARED / "BallPlay-M" / "layup"
DEMO_DRIBBLE = DEMO / "013_demo_dribble_1.pt"
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
    contact = np.array([f.obj_contact for f in frames])
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


def orange_pixels(img) -> int:
    """The hoop's rim colour (0.95, 0.35, 0.05)."""
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    return int(((r > 180) & (g > 50) & (g < 140) & (b < 60)).sum())


def test_layup_render_draws_the_hoop_only_when_asked(gl_backend, tmp_path):
    if not LAYUP.exists():
        pytest.skip("shared BallPlay data not present")
    from skillmimic.viz.render import render_clip

    with_hoop, without = tmp_path / "hoop.mp4", tmp_path / "plain.mp4"
    kw = dict(start=140, frames=3, width=640, height=480, progress=False)      # the rim tube is 2 cm thick
    render_clip(LAYUP, with_hoop, hoop=True, **kw)
    render_clip(LAYUP, without, **kw)
    _, hoop_video = decode(with_hoop)
    _, plain_video = decode(without)
    assert all(orange_pixels(img) > 20 for img in hoop_video)
    assert all(orange_pixels(img) == 0 for img in plain_video)


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
        np.testing.assert_allclose(data.xpos[model.body("object").id], ref.state.obj_pos[i].numpy(), atol=1e-5)


def project(model, data, cam, points, aspect):
    """(u, v) image coordinates in [0, 1] (v = 1 at the top) of ``points`` through MuJoCo's own
    camera for ``cam`` (mjv_updateScene's GL camera and frustum), as the renderer draws them."""
    scn, opt = mujoco.MjvScene(model, 2000), mujoco.MjvOption()
    mujoco.mjv_updateScene(model, data, opt, None, cam, mujoco.mjtCatBit.mjCAT_ALL, scn)
    gc = scn.camera[0]
    pos, fwd, up = np.array(gc.pos), np.array(gc.forward), np.array(gc.up)
    right = np.cross(fwd, up)
    v = np.atleast_2d(points) - pos
    z = v @ fwd
    assert (z > gc.frustum_near).all()
    half_w = aspect * (gc.frustum_top - gc.frustum_bottom) / 2
    u = ((v @ right) * gc.frustum_near / z - (gc.frustum_center - half_w)) / (2 * half_w)
    w = ((v @ up) * gc.frustum_near / z - gc.frustum_bottom) / (gc.frustum_top - gc.frustum_bottom)
    return u, w


def test_camera_keeps_ball_and_pelvis_in_frame_on_every_layup_frame():
    """Geometric: through MuJoCo's camera model, the ball and the pelvis of every frame of the
    shared layup clip (the ball reaches 2.8 m) project inside the picture, with room to spare
    for their size; the horizon stays in the top quarter (little sky)."""
    if not LAYUP.exists():
        pytest.skip("shared BallPlay data not present")
    from skillmimic.viz.scene import side_azimuth, subject_points

    lay = MotionLibrary(LAYUP)
    model = scene_model(width=W, height=H)
    layout = SceneLayout.from_model(model, SKELETON_BALLPLAY)
    data = mujoco.MjData(model)
    ref = lay.clip_frames(0)
    qpos = qpos_from_state(layout, ref.state)
    camera = FollowCamera(azimuth=side_azimuth(ref.state.root_pos[:, :2].numpy()), aspect=W / H,
                          fovy=float(model.vis.global_.fovy))
    cam = mujoco.MjvCamera()
    ball, pelvis = model.body("object").id, model.body("Pelvis").id
    worst = 1.0
    for i in range(ref.num_frames):
        pose(model, data, qpos[i])
        camera.update(cam, subject_points(model, data))
        u, w = project(model, data, cam, data.xpos[[ball, pelvis]], W / H)
        assert ((u > 0.02) & (u < 0.98) & (w > 0.02) & (w < 0.98)).all(), f"frame {i}: ball/pelvis at u={u}, v={w}"
        worst = min(worst, float(np.min(np.minimum(np.minimum(u, 1 - u), np.minimum(w, 1 - w)))))
    assert worst > 0.03
    # horizon: the direction 0 deg up sits at tan(-elevation) / tan(fovy / 2) above the centre
    horizon = 0.5 + math.tan(math.radians(-camera.elevation)) / (2 * math.tan(math.radians(camera.fovy / 2)))
    assert horizon > 0.75


def test_hoop_pose_for_the_layup_and_hoop_geoms_in_the_scene():
    if not LAYUP.exists():
        pytest.skip("shared BallPlay data not present")
    from skillmimic.assets.mjcf import HoopConfig, SceneConfig
    from skillmimic.viz.scene import hoop_pose_for_clip, place_hoop

    ref = MotionLibrary(LAYUP).clip_frames(0)
    root, ballp = ref.state.root_pos.numpy(), ref.state.obj_pos.numpy()
    rim_xy, yaw = hoop_pose_for_clip(root, ballp)
    np.testing.assert_allclose(rim_xy, ballp[np.argmax(ballp[:, 2]), :2])
    toward_start = root[0, :2] - rim_xy
    assert np.dot([math.cos(yaw), math.sin(yaw)], toward_start / np.linalg.norm(toward_start)) > 0.999
    model = scene_model(SceneConfig(hoop=HoopConfig()), W, H)
    data = mujoco.MjData(model)
    points = place_hoop(model, data, rim_xy, yaw)
    np.testing.assert_allclose(points[0], [*rim_xy, 3.05], atol=1e-9)
    board = data.geom_xpos[model.geom("backboard").id]
    # backboard beyond the rim, away from where the player came from
    assert np.dot(board[:2] - rim_xy, toward_start) < 0 and points[1][2] > 3.05
    with pytest.raises(ValueError, match="no hoop"):
        place_hoop(scene_model(width=W, height=H), mujoco.MjData(scene_model(width=W, height=H)), rim_xy, yaw)


def test_colour_cues():
    model = scene_model(width=W, height=H)
    cues = ColourCues(model)
    ball = model.geom("object_geom").id
    body_rgba = model.geom_rgba[cues.humanoid_geoms].copy()
    assert len(cues.humanoid_geoms) == len(SKELETON_BALLPLAY.names)
    cues.apply(True)
    np.testing.assert_allclose(model.geom_rgba[ball], OBJECT_CONTACT_RGBA)
    cues.apply(False, root_ang_vel=[0.0, 0.0, 1.0])
    np.testing.assert_allclose(model.geom_rgba[ball], OBJECT_FREE_RGBA)
    np.testing.assert_allclose(model.geom_rgba[cues.humanoid_geoms], body_rgba)
    cues.apply(False, root_ang_vel=torch.tensor([6.0, 0.0, 0.0]).numpy())     # spinning: blue for 10 frames
    for _ in range(9):
        np.testing.assert_allclose(model.geom_rgba[cues.humanoid_geoms[0]], ABNORMAL_RGBA)
        cues.apply(False, root_ang_vel=[0.0, 0.0, 0.0])
    cues.apply(False, root_ang_vel=[0.0, 0.0, 0.0])
    np.testing.assert_allclose(model.geom_rgba[cues.humanoid_geoms], body_rgba)


def test_ctrl_c_stops_render_without_a_traceback(monkeypatch, capsys, tmp_path):
    import skillmimic.viz.render as render

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(render, "render_clip", interrupted)
    assert render_main(["clip", "whatever", "--out", str(tmp_path / "x.mp4")]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err


def test_default_output_is_under_the_ignored_outputs_folder():
    from skillmimic.viz.render import default_out

    out = default_out("layup")
    assert out == pathlib.Path("outputs/videos/layup.mp4")
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "outputs/" in ignored
