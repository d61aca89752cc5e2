"""The viewer's key map drives the skill label, tested through the key handler (no display):
with a real SkillEnv (policy mode) and with the dataset replay player."""

from __future__ import annotations

import pytest
import torch

from envs import SkillEnv, SkillEnvConfig
from skillmimic.motion import MotionLibrary
from skillmimic.sim.mujoco_cpu import MujocoCPUSimulator
from skillmimic.viz.keymap import DEFAULT_SKILL_KEYS, KeyHandler, KeyMap, key_code
from skillmimic.viz.viewer import DEFAULT_VIEWER_CONFIG, DatasetPlayer, PolicyPlayer, load_keymap

from helpers import REPO
BALLPLAY = REPO.parent / "shared" / "data" / "motions" / "BallPlay-M"


@pytest.fixture(scope="module")
def motion():
    if not BALLPLAY.exists():
        pytest.skip("shared BallPlay data not present")
    return MotionLibrary([BALLPLAY / "layup", BALLPLAY / "run"])


@pytest.fixture()
def env(motion):
    e = SkillEnv(SkillEnvConfig(num_envs=2, seed=0), motion, MujocoCPUSimulator(2))
    e.reset()
    yield e
    e.close()


def one_hot_label(obs: torch.Tensor) -> list[int]:
    hot = obs[:, 838:838 + 64]
    assert torch.equal(hot.sum(-1), torch.ones(obs.shape[0]))
    return hot.argmax(-1).tolist()


def test_every_skill_key_conditions_all_envs(env):
    handler = KeyHandler(env, load_keymap())
    for name, label in DEFAULT_SKILL_KEYS.items():
        assert handler.handle_key(key_code(name)) == "skill"
        assert env.skill_labels.tolist() == [label, label], name
        assert one_hot_label(env.obs) == [label, label], name
        assert handler.skill == label
    # the label holds while stepping (until the env's next reset), as in the original viewer
    handler.handle_key(key_code("E"))
    obs, *_ = env.step(torch.zeros(2, 156))
    assert one_hot_label(obs) == [31, 31]


def test_non_skill_keys(env):
    handler = KeyHandler(env)
    before = env.skill_labels.clone()
    assert handler.handle_key(key_code("Z")) is None and handler.handle_key(999) is None
    assert torch.equal(env.skill_labels, before)
    assert handler.handle_key(key_code("SPACE")) == "pause" and handler.paused
    assert handler.handle_key(32) == "pause" and not handler.paused
    assert not handler.take_reset()
    assert handler.handle_key(key_code("BACKSPACE")) == "reset"
    assert handler.take_reset() and not handler.take_reset()
    assert torch.equal(env.skill_labels, before)


def test_custom_keymap_rebinds_keys(env):
    handler = KeyHandler(env, KeyMap(skills={"W": 9, "DOWN": 13}, pause="P", reset="ENTER"))
    assert handler.handle_key(key_code("W")) == "skill" and env.skill_labels.tolist() == [9, 9]
    assert handler.handle_key(key_code("DOWN")) == "skill" and env.skill_labels.tolist() == [13, 13]
    assert handler.handle_key(key_code("LEFT")) is None and env.skill_labels.tolist() == [13, 13]
    assert handler.handle_key(ord("P")) == "pause"


def test_dataset_replay_switches_clips_by_skill_key(motion):
    player = DatasetPlayer(motion, clip=0)
    handler = KeyHandler(player)
    assert player.label == 31
    run_clips = motion.clip_ids_of_label(13).tolist()
    assert len(run_clips) == 3
    seen = []
    for _ in range(4):                         # UP cycles through the dribble-forward clips
        assert handler.handle_key(key_code("UP")) == "skill"
        assert player.label == 13 and player.frame == 0
        seen.append(player.clip)
    assert seen == run_clips + run_clips[:1]
    assert handler.handle_key(key_code("E")) == "skill" and player.label == 31
    # no pick-up clip in this library: the key is refused, the replay goes on unchanged
    assert handler.handle_key(key_code("Q")) is None and player.label == 31
    assert "no clip of skill 001" in handler.last_message
    frame = player.current()
    assert frame.state.num_worlds == 1 and "skill 031" in frame.text
    for _ in range(int(motion.clip_lengths[player.clip])):
        player.step()
    assert player.frame == 0 and player.clip != motion.clip_ids_of_label(31).item()


def test_policy_player_holds_episodes_and_follows_keys(motion):
    env = SkillEnv(SkillEnvConfig(num_envs=2, seed=0), motion, MujocoCPUSimulator(2))
    try:
        player = PolicyPlayer(env, lambda obs: torch.zeros(obs.shape[0], 156))
        handler = KeyHandler(player)
        assert not env.early_termination and env.cfg.enable_early_termination   # test mode; the config untouched
        assert (env.start_frames == 2).all() and (env.segment_length > 10**6).all()
        handler.handle_key(key_code("RIGHT"))
        player.step()
        assert env.skill_labels.tolist() == [12, 12] and env.progress.tolist() == [1, 1]
        assert "skill 012" in player.current().text
        player.reset()
        assert env.progress.tolist() == [0, 0]
    finally:
        env.close()


def test_config_keymap_is_the_documented_default_and_uses_glfw_codes():
    assert DEFAULT_VIEWER_CONFIG.exists()
    km = KeyMap.load(DEFAULT_VIEWER_CONFIG)
    assert km.skills == DEFAULT_SKILL_KEYS and (km.pause, km.reset) == ("SPACE", "BACKSPACE")
    glfw = pytest.importorskip("glfw")
    for name in ("LEFT", "RIGHT", "UP", "DOWN", "SPACE", "BACKSPACE", "ENTER", "Q", "W", "E", "X", "C", "R", "B",
                 "0", "1", "F5"):
        assert key_code(name) == getattr(glfw, f"KEY_{name}"), name
    assert key_code("q") == glfw.KEY_Q


def test_keymap_validation():
    with pytest.raises(ValueError, match="unknown key name"):
        KeyMap(skills={"NOPE": 1}).codes()
    with pytest.raises(ValueError, match="label must be in"):
        KeyMap(skills={"Q": 64}).codes()
    with pytest.raises(ValueError, match="bound twice"):
        KeyMap(skills={"Q": 1}, pause="Q").codes()
    with pytest.raises(ValueError, match="unknown keymap entries"):
        KeyMap.from_mapping({"skills": {"Q": 1}, "quit": "ESCAPE"})


def test_ctrl_c_closes_the_viewer_without_a_traceback(monkeypatch, capsys):
    """The real viewer loop on the demo clips with MuJoCo's passive viewer stood in for (no
    display here): it frames the humanoid, steps the replay, and Ctrl-C (KeyboardInterrupt
    from the loop) closes the window and makes main() return 130 with one line, no traceback."""
    import contextlib

    import mujoco
    import mujoco.viewer

    import skillmimic.viz.viewer as viewer

    demo = REPO / "data" / "motions" / "demo"
    if not any(demo.glob("*.pt")):
        pytest.skip("demo clips not present")

    class FakeViewer:
        def __init__(self):
            self.cam, self.syncs, self.closed = mujoco.MjvCamera(), 0, False

        def is_running(self):
            return True

        def lock(self):
            return contextlib.nullcontext()

        def sync(self):
            self.syncs += 1
            if self.syncs == 3:
                raise KeyboardInterrupt

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.closed = True

    fake = FakeViewer()
    monkeypatch.setattr(mujoco.viewer, "launch_passive", lambda *a, **kw: fake)
    monkeypatch.setattr(viewer, "has_display", lambda: True)
    assert viewer.main(["--fps", "1000", "dataset", str(demo)]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err
    assert fake.closed and fake.syncs == 3 and fake.cam.distance >= 4.0       # framed by FollowCamera
