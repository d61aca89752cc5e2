"""Interactive MuJoCo viewer: play a policy or replay the dataset, switch skills by key.

    python -m skillmimic.viz.viewer dataset ../shared/data/motions/BallPlay-M
    python -m skillmimic.viz.viewer policy outputs/skill/<run>/nn/skill.pth [--motion PATH]

Uses ``mujoco.viewer.launch_passive`` (GLFW; needs a display): this process owns the loop,
steps the env (or the replay) at 60 Hz and copies world 0 into the viewer's scene. Keys
come from ``cfg/viewer.yaml`` (defaults in :mod:`.keymap`): arrows/Q/W/E/X/C/R/B/0/1
pick a skill, SPACE pauses, BACKSPACE resets. In policy mode a skill key conditions every
env on that skill (the policy's one-hot) until the next reset; in dataset mode it jumps to
the next clip of that skill. The object is red while its contact flag is set (simulated
contact in policy mode, the recorded flag in dataset mode), green otherwise; the humanoid
flashes blue when the root spins faster than 5 rad/s. The camera's look-at point follows
the humanoid; drag to orbit and zoom as usual.

Note: MuJoCo's own viewer UI also binds some letters to render toggles (e.g. C contact
points, W wireframe); both actions happen. Remap in ``cfg/viewer.yaml`` if that bothers.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..assets.skeleton import SKELETON_BALLPLAY
from ..sim.base import SceneLayout
from ..state import JointState
from .keymap import KeyHandler, KeyMap
from .scene import ColourCues, FollowCamera, pose, qpos_from_state, scene_model, subject_points

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VIEWER_CONFIG = REPO_ROOT / "cfg" / "viewer.yaml"
_HOLD = 10**9          # segment length that never times out (viewer episodes end on reset only)


@dataclass
class Frame:
    state: JointState          # one row
    obj_contact: bool
    text: str


class DatasetPlayer:
    """Kinematic replay of a motion library, clip after clip (the original's play_dataset)."""

    def __init__(self, motion, clip: int = 0):
        self.motion = motion
        self.clip = int(clip)
        self.frame = 0
        if not 0 <= self.clip < motion.num_clips:
            raise IndexError(f"clip {clip} out of range: {motion.num_clips} clip(s)")

    @property
    def label(self) -> int:
        return int(self.motion.clip_labels[self.clip])

    def set_skill(self, label: int) -> None:
        """Jump to the next clip of skill ``label`` (cycling through that skill's clips)."""
        ids = self.motion.clip_ids_of_label(int(label)).tolist()
        if not ids:
            raise ValueError(f"no clip of skill {int(label):03d} in the motion library")
        later = [i for i in ids if i > self.clip] if self.label == int(label) else []
        self.clip = later[0] if later else ids[0]
        self.frame = 0

    def reset(self) -> None:
        self.frame = 0

    def step(self) -> None:
        self.frame += 1
        if self.frame >= int(self.motion.clip_lengths[self.clip]):
            self.clip = (self.clip + 1) % self.motion.num_clips
            self.frame = 0

    def current(self) -> Frame:
        ref = self.motion.get_frame_at(torch.tensor([self.clip]), torch.tensor([self.frame]))
        name = Path(self.motion.files[self.clip]).stem
        return Frame(ref.state, bool(ref.contact[0] > 0.5),
                     f"{name}  skill {self.label:03d}  frame {self.frame}/{int(self.motion.clip_lengths[self.clip]) - 1}")


class PolicyPlayer:
    """A policy driving a :class:`~envs.skill.SkillEnv` in test mode (no early termination,
    no time-out: the episode lasts until reset); the viewer shows world ``env_id``."""

    def __init__(self, env, policy, env_id: int = 0, start_frame: int = 2):
        self.env, self.policy, self.env_id, self.start_frame = env, policy, int(env_id), int(start_frame)
        env.set_test_mode(early_termination=False)
        self.reset()

    def set_skill(self, label: int) -> None:
        self.env.set_skill(int(label))

    def reset(self) -> None:
        from ..eval.runner import begin_test_episodes

        clips, _ = self.env.sample_starts(self.env.num_envs)
        begin_test_episodes(self.env, clips, self.start_frame, _HOLD)
        self.env.obs = self.env.compute_obs()

    @torch.no_grad()
    def step(self) -> None:
        self.env.step(self.policy(self.env.obs))

    def current(self) -> Frame:
        from ..eval.metrics import object_contact_flag

        env, i = self.env, self.env_id
        st = env.sim.state
        contact = bool(object_contact_flag(st.obj_contact_force[i:i + 1])[0])
        return Frame(st.joint[i:i + 1], contact,
                     f"skill {int(env.skill_labels[i]):03d}  step {int(env.progress[i])}  clip {int(env.clip_ids[i])}")


def load_keymap(path: str | Path | None = None) -> KeyMap:
    """``path``'s keymap, else ``cfg/viewer.yaml`` beside the package if present, else the defaults."""
    if path is not None:
        return KeyMap.load(path)
    if DEFAULT_VIEWER_CONFIG.exists():
        return KeyMap.load(DEFAULT_VIEWER_CONFIG)
    return KeyMap()


def has_display() -> bool:
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run_viewer(player, keymap: KeyMap | None = None, camera: FollowCamera | None = None, fps: float = 60.0,
               scene=None) -> None:
    """Open the passive viewer and play ``player`` (DatasetPlayer / PolicyPlayer) until closed."""
    import mujoco.viewer

    if not has_display():
        raise RuntimeError("the interactive viewer needs a display (DISPLAY is not set); for headless use "
                           "render a video: python -m skillmimic.viz.render")
    keymap = keymap or load_keymap()
    camera = camera or FollowCamera()
    model = scene_model(scene)
    layout = SceneLayout.from_model(model, SKELETON_BALLPLAY)
    data = mujoco.MjData(model)
    cues = ColourCues(model)
    handler = KeyHandler(player, keymap)
    print(f"[skillmimic viewer] keys: {keymap.describe()}", flush=True)
    dt = 1.0 / fps
    last_msg = ""
    with mujoco.viewer.launch_passive(model, data, key_callback=handler.handle_key) as viewer:
        first = True
        while viewer.is_running():
            t0 = time.perf_counter()
            with handler.lock:
                if handler.take_reset():
                    player.reset()
                    cues.reset()
                elif not handler.paused:
                    player.step()
                frame = player.current()
            with viewer.lock():
                pose(model, data, qpos_from_state(layout, frame.state)[0])
                cues.apply(frame.obj_contact, frame.state.root_ang_vel[0].cpu().numpy())
                root = data.qpos[layout.root_q][:3]
                if first:
                    camera.update(viewer.cam, subject_points(model, data))     # framed once, then the user's
                    first = False
                else:
                    camera.follow(viewer.cam, root)
            viewer.sync()
            if handler.last_message != last_msg:
                last_msg = handler.last_message
                print(f"[skillmimic viewer] {last_msg}  ({frame.text})", flush=True)
            time.sleep(max(0.0, dt - (time.perf_counter() - t0)))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m skillmimic.viz.viewer", description=__doc__.split("\n\n")[0])
    p.add_argument("--keymap", default=None, help="YAML with a 'keymap' entry (default: cfg/viewer.yaml)")
    p.add_argument("--fps", type=float, default=60.0)
    sub = p.add_subparsers(dest="mode", required=True)
    d = sub.add_parser("dataset", help="kinematic replay of the motion clips")
    d.add_argument("path", help=".pt clip or folder of clips")
    d.add_argument("--clip", type=int, default=0)
    q = sub.add_parser("policy", help="play a trained policy")
    q.add_argument("checkpoint")
    q.add_argument("--motion", default=None, help="clips to start from (default: the run's motion)")
    q.add_argument("--num-envs", type=int, default=1)
    q.add_argument("--start-frame", type=int, default=2)
    q.add_argument("--device", default="cpu")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    keymap = load_keymap(args.keymap)
    if not has_display():
        print("error: the interactive viewer needs a display (DISPLAY is not set); for headless machines "
              "render a video instead: python -m skillmimic.viz.render", file=sys.stderr)
        return 3
    try:
        if args.mode == "dataset":
            from ..motion import MotionLibrary

            run_viewer(DatasetPlayer(MotionLibrary(args.path), args.clip), keymap, fps=args.fps)
            return 0
        from ..eval.policy import load_player

        policy, env = load_player(args.checkpoint, args.num_envs, motion_path=args.motion, device=args.device)
        try:
            run_viewer(PolicyPlayer(env, policy, start_frame=args.start_frame), keymap, fps=args.fps,
                       scene=env.sim.scene_cfg)
        finally:
            env.close()
    except KeyboardInterrupt:            # Ctrl-C in the terminal: close the window, no traceback
        print("\n[skillmimic viewer] interrupted", file=sys.stderr, flush=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
