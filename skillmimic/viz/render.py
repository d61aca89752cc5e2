"""Headless MP4 rendering of a dataset clip (kinematic replay) or of a policy rollout.

Why: a policy is judged by watching it, and training machines have no display. MuJoCo
renders offscreen through EGL or OSMesa (:mod:`.gl`), frames go to ``ffmpeg`` through
``imageio-ffmpeg`` (H.264, yuv420p: plays everywhere), a camera follows the humanoid, the
object shows its contact flag (red = contact, green = none) and a tqdm bar shows progress.

    python -m skillmimic.viz.render clip ../shared/data/motions/BallPlay-M/layup --out layup.mp4
    python -m skillmimic.viz.render clip data/motions/demo --clip 2 --frames 120 --out demo.mp4
    python -m skillmimic.viz.render policy outputs/skill/<run>/nn/skill.pth --out policy.mp4 --steps 300

Clip mode poses the recorded reference frame by frame (no physics) and colours the object by
the reference contact flag; policy mode steps the env with the deterministic policy and
colours the object by the *simulated* contact (``--contact ref`` shows the reference's).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

import mujoco
import numpy as np
import torch

from ..assets.mjcf import HoopConfig, SceneConfig
from ..sim.base import SceneLayout
from ..assets.skeleton import SKELETON_BALLPLAY
from ..state import JointState
from . import gl
from .scene import (
    ColourCues, FollowCamera, hoop_pose_for_clip, place_hoop, pose, qpos_from_state, scene_model, side_azimuth,
    subject_points,
)

DEFAULT_SIZE = (640, 480)
HOOP_FRAMING_RANGE = 3.0       # m: the camera keeps the rim in frame once the humanoid is this close
QUALITIES = ("auto", "fast", "high")


@dataclass
class RenderFrame:
    """One frame to draw: the pose of one world and what the cues need."""

    state: JointState          # one row
    obj_contact: bool
    text: str = ""


@dataclass
class RenderStats:
    path: Path
    frames: int
    seconds: float
    backend: str
    width: int
    height: int

    @property
    def fps(self) -> float:
        return self.frames / max(self.seconds, 1e-9)


class OffscreenRenderer:
    """MuJoCo's classic renderer on a headless GL context of our choosing (see :mod:`.gl`).

    ``quality``: ``"high"`` keeps MuJoCo's shadows, floor reflection and 4x MSAA;
    ``"fast"`` turns the three off, which on Mesa's CPU rasteriser (llvmpipe) is the
    difference between ~4 and ~40-70 frames/s at 640x480 (each one alone costs 3-10x);
    ``"auto"`` picks ``fast`` on a software renderer and ``high`` on a GPU.
    """

    def __init__(self, model: mujoco.MjModel, width: int = DEFAULT_SIZE[0], height: int = DEFAULT_SIZE[1],
                 quality: str = "auto"):
        if quality not in QUALITIES:
            raise ValueError(f"quality must be one of {QUALITIES}, got {quality!r}")
        if width > model.vis.global_.offwidth or height > model.vis.global_.offheight:
            model.vis.global_.offwidth = max(width, model.vis.global_.offwidth)
            model.vis.global_.offheight = max(height, model.vis.global_.offheight)
        self.model, self.width, self.height = model, int(width), int(height)
        self._ctx = gl.create_context(self.width, self.height)
        self.gl_renderer = gl.renderer_name()
        if quality == "auto":
            quality = "fast" if gl.is_software(self.gl_renderer) else "high"
        self.quality = quality
        if quality == "fast":
            model.vis.quality.offsamples = 0       # read by MjrContext: set before it is made
        self.scene = mujoco.MjvScene(model, maxgeom=2000)
        if quality == "fast":
            self.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
            self.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        self.option = mujoco.MjvOption()
        self.camera = mujoco.MjvCamera()
        font = mujoco.mjtFontScale.mjFONTSCALE_150 if self.width >= 480 else mujoco.mjtFontScale.mjFONTSCALE_100
        self._mjr = mujoco.MjrContext(model, font)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._mjr)
        self._rect = mujoco.MjrRect(0, 0, self.width, self.height)
        self._rgb = np.empty((self.height, self.width, 3), dtype=np.uint8)

    def render(self, data: mujoco.MjData, text: str = "") -> np.ndarray:
        """(H, W, 3) uint8 image of ``data`` seen from :attr:`camera` (top row first)."""
        self._ctx.make_current()
        mujoco.mjv_updateScene(self.model, data, self.option, None, self.camera,
                               mujoco.mjtCatBit.mjCAT_ALL, self.scene)
        mujoco.mjr_render(self._rect, self.scene, self._mjr)
        if text:
            mujoco.mjr_overlay(mujoco.mjtFont.mjFONT_NORMAL, mujoco.mjtGridPos.mjGRID_TOPLEFT,
                               self._rect, text, "", self._mjr)
        mujoco.mjr_readPixels(self._rgb, None, self._rect, self._mjr)
        return np.ascontiguousarray(self._rgb[::-1])

    def close(self) -> None:
        if self._mjr is not None:
            self._ctx.make_current()
            self._mjr.free()
            self._mjr = None
            self._ctx.free()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Mp4Writer:
    """H.264 MP4 through imageio-ffmpeg's bundled ffmpeg (no system ffmpeg needed)."""

    def __init__(self, path: str | Path, width: int, height: int, fps: float = 60.0, quality: float = 7.0):
        import imageio_ffmpeg

        if width % 2 or height % 2:
            raise ValueError(f"H.264/yuv420p needs even frame sizes, got {width}x{height}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._gen = imageio_ffmpeg.write_frames(str(self.path), (width, height), fps=fps, codec="libx264",
                                                pix_fmt_out="yuv420p", quality=quality, macro_block_size=2,
                                                ffmpeg_log_level="error")
        self._gen.send(None)
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        self._gen.send(rgb)
        self.frames += 1

    def close(self) -> None:
        if self._gen is not None:
            self._gen.close()
            self._gen = None


def render_frames(frames: Iterable[RenderFrame], out: str | Path, total: int | None = None,
                  scene: SceneConfig | None = None, width: int = DEFAULT_SIZE[0], height: int = DEFAULT_SIZE[1],
                  fps: float = 60.0, camera: FollowCamera | None = None, progress: bool = True,
                  desc: str = "render", quality: str = "auto", hoop: tuple | None = None) -> RenderStats:
    """Draw every :class:`RenderFrame` with the framing camera and colour cues into ``out``
    (MP4). ``hoop``: (rim xy, yaw) of a regulation hoop to draw (see :func:`hoop_pose_for_clip`)."""
    from tqdm import tqdm

    if hoop is not None and (scene is None or scene.hoop is None):
        scene = replace(scene or SceneConfig(), hoop=HoopConfig())
    model = scene_model(scene, width, height)
    layout = SceneLayout.from_model(model, SKELETON_BALLPLAY)
    data = mujoco.MjData(model)
    cues = ColourCues(model)
    camera = camera or FollowCamera()
    camera.aspect, camera.fovy = width / height, float(model.vis.global_.fovy)
    camera.reset()
    if hoop is not None:
        hoop_points = place_hoop(model, data, *hoop)
    elif model.nmocap:                     # a scene with a hoop but none asked for: out of sight
        data.mocap_pos[:] = [0.0, 0.0, -100.0]
    t0 = time.perf_counter()
    with OffscreenRenderer(model, width, height, quality) as renderer:
        writer = Mp4Writer(out, width, height, fps)
        try:
            for frame in tqdm(frames, total=total, desc=desc, unit="frame", disable=not progress,
                              dynamic_ncols=True, leave=False):
                pose(model, data, qpos_from_state(layout, frame.state)[0])
                cues.apply(frame.obj_contact, frame.state.root_ang_vel[0].cpu().numpy())
                points = subject_points(model, data)
                root = data.qpos[layout.root_q][:3]
                if hoop is not None and np.linalg.norm(hoop_points[0, :2] - root[:2]) < HOOP_FRAMING_RANGE:
                    points = np.concatenate([points, hoop_points])     # near the hoop: keep rim and board in view
                camera.update(renderer.camera, points)
                writer.write(renderer.render(data, frame.text))
        finally:
            writer.close()
    return RenderStats(Path(out), writer.frames, time.perf_counter() - t0,
                       f"{gl.backend() or '?'} ({renderer.gl_renderer or 'unknown renderer'}, {renderer.quality})",
                       width, height)


# ----------------------------------------------------------------------------- sources
def clip_frames(motion, clip: int = 0, start: int = 0, count: int | None = None) -> list[RenderFrame]:
    """Kinematic replay frames of clip ``clip`` of a :class:`~skillmimic.motion.MotionLibrary`."""
    if not 0 <= clip < motion.num_clips:
        raise IndexError(f"clip {clip} out of range: the motion library has {motion.num_clips} clip(s)")
    ref = motion.clip_frames(clip)
    length = ref.num_frames
    if not 0 <= start < length:
        raise IndexError(f"start frame {start} out of range [0, {length})")
    stop = length if count is None else min(length, start + int(count))
    name = Path(motion.files[clip]).stem
    label = int(motion.clip_labels[clip])
    return [RenderFrame(ref.state[i:i + 1], bool(ref.contact[i] > 0.5),
                        f"{name}  skill {label:03d}  frame {i}/{length - 1}") for i in range(start, stop)]


def rollout_frames(env, policy: Callable[[torch.Tensor], torch.Tensor], steps: int, env_id: int = 0,
                   contact: str = "sim") -> Iterator[RenderFrame]:
    """Step ``env`` (a :class:`~envs.skill.SkillEnv`) with ``policy`` and yield world ``env_id``
    after each step (the first frame is the reset state). Contact cue from the simulation
    (``"sim"``) or the reference (``"ref"``)."""
    from ..eval.metrics import object_contact_flag

    if contact not in ("sim", "ref"):
        raise ValueError(f"contact must be 'sim' or 'ref', got {contact!r}")
    obs = env.obs
    for k in range(steps + 1):
        if k:
            with torch.no_grad():
                obs, _, _, _ = env.step(policy(obs))
        st = env.sim.state
        ref = env.reference(torch.tensor([env_id], device=env.device))
        flag = bool(ref.contact[0] > 0.5) if contact == "ref" else \
            bool(object_contact_flag(st.obj_contact_force[env_id:env_id + 1])[0])
        label = int(env.skill_labels[env_id])
        yield RenderFrame(st.joint[env_id:env_id + 1], flag,
                          f"skill {label:03d}  step {k}  clip {int(env.clip_ids[env_id])}")


def render_clip(motion_path, out: str | Path, clip: int = 0, start: int = 0, frames: int | None = None,
                hoop: bool = False, **kw) -> RenderStats:
    """MP4 of a dataset clip (file or folder; ``clip`` indexes the library's sorted clips),
    seen from the side of its travel; ``hoop``: draw a regulation hoop over the ball's peak."""
    from ..motion import MotionLibrary

    motion = MotionLibrary(motion_path)
    items = clip_frames(motion, clip, start, frames)
    ref = motion.clip_frames(clip)
    root, obj = ref.state.root_pos.numpy(), ref.state.obj_pos.numpy()
    if "camera" not in kw:
        kw["camera"] = FollowCamera(azimuth=side_azimuth(root[:, :2]))
    return render_frames(items, out, total=len(items), desc=f"render {Path(motion.files[clip]).name}",
                         hoop=hoop_pose_for_clip(root, obj) if hoop else None, **kw)


def default_out(name: str) -> Path:
    """``outputs/videos/<name>.mp4`` under the working directory (``outputs/`` is git-ignored)."""
    return Path("outputs") / "videos" / f"{name}.mp4"


def render_policy(env, policy, out: str | Path, steps: int, env_id: int = 0, contact: str = "sim",
                  **kw) -> RenderStats:
    """MP4 of world ``env_id`` of ``env`` driven by ``policy`` for ``steps`` steps (env must be reset)."""
    return render_frames(rollout_frames(env, policy, steps, env_id, contact), out, total=steps + 1,
                         desc="render policy", **kw)


# ----------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m skillmimic.viz.render", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="mode", required=True)

    def common(sp):
        sp.add_argument("--out", default=None, help="output .mp4 (default: outputs/videos/<name>.mp4, git-ignored)")
        sp.add_argument("--width", type=int, default=DEFAULT_SIZE[0])
        sp.add_argument("--height", type=int, default=DEFAULT_SIZE[1])
        sp.add_argument("--fps", type=float, default=60.0, help="video frame rate (data and control run at 60 Hz)")
        sp.add_argument("--quality", choices=QUALITIES, default="auto",
                        help="fast: no shadows/reflection/MSAA (auto picks it on a CPU rasteriser)")
        sp.add_argument("--no-progress", action="store_true")

    c = sub.add_parser("clip", help="kinematic replay of a dataset clip")
    c.add_argument("path", help=".pt clip or folder of clips")
    c.add_argument("--clip", type=int, default=0, help="index of the clip in the (sorted) folder")
    c.add_argument("--start", type=int, default=0)
    c.add_argument("--frames", type=int, default=None, help="at most this many frames (default: to the end)")
    c.add_argument("--hoop", action="store_true", help="draw a regulation hoop over the ball's highest point "
                                                     "(a layup or shot clip has none)")
    common(c)

    q = sub.add_parser("policy", help="rollout of a trained policy")
    q.add_argument("checkpoint", help="training checkpoint (.pth)")
    q.add_argument("--motion", default=None, help="clips to start from (default: the run's motion)")
    q.add_argument("--skill", type=int, default=None, help="condition on this skill label (default: the clip's)")
    q.add_argument("--clip", type=int, default=0, help="start clip index")
    q.add_argument("--start-frame", type=int, default=2)
    q.add_argument("--steps", type=int, default=300)
    q.add_argument("--contact", choices=("sim", "ref"), default="sim", help="what colours the object")
    q.add_argument("--device", default="cpu")
    common(q)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    kw = dict(width=args.width, height=args.height, fps=args.fps, progress=not args.no_progress,
              quality=args.quality)
    try:
        if args.mode == "clip":
            out = args.out or default_out(Path(args.path).stem + (f"_{args.clip}" if args.clip else ""))
            stats = render_clip(args.path, out, clip=args.clip, start=args.start, frames=args.frames,
                                hoop=args.hoop, **kw)
        else:
            from ..eval.policy import load_player

            policy, env = load_player(args.checkpoint, 1, motion_path=args.motion, device=args.device,
                                      episode_length=args.steps + 1)
            try:
                from ..eval.runner import begin_test_episodes

                if not 0 <= args.clip < env.motion.num_clips:
                    raise IndexError(f"--clip {args.clip}: the motion library has {env.motion.num_clips} clip(s)")
                begin_test_episodes(env, torch.tensor([args.clip]), args.start_frame, args.steps)
                if args.skill is not None:
                    env.set_skill(args.skill)
                env.obs = env.compute_obs()
                out = args.out or default_out(Path(args.checkpoint).stem + "_policy")
                stats = render_policy(env, policy, out, args.steps, contact=args.contact,
                                      scene=env.sim.scene_cfg, **kw)
            finally:
                env.close()
    except KeyboardInterrupt:            # Ctrl-C: the partial MP4 is closed (playable), no traceback
        print("\n[skillmimic render] interrupted", file=sys.stderr, flush=True)
        return 130
    except gl.GLUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except (IndexError, ValueError, OSError, RuntimeError) as e:   # bad clip/frame/path/checkpoint: one line
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {stats.path} ({stats.frames} frames, {stats.width}x{stats.height}, "
          f"{stats.fps:.1f} frames/s rendered, GL backend {stats.backend})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
