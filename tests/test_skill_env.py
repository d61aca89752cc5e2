"""Skill env on the real MuJoCo engine: shapes, reset, reward timing, termination, NaN worlds."""

from __future__ import annotations

import pytest
import torch

from envs import SkillEnv, SkillEnvConfig
from skillmimic.motion import MotionLibrary
from skillmimic.sim.mujoco_cpu import MujocoCPUSimulator

from helpers import SHARED_MOTIONS as SHARED
LAYUP = SHARED / "BallPlay-M" / "layup"
needs_data = pytest.mark.skipif(not LAYUP.exists(), reason="shared BallPlay data not present")


class ReplaySimulator(MujocoCPUSimulator):
    """A 'perfect' physics: every step lands exactly on the reference frame ``lag`` frames
    after the one the env imitated before the step (lag 1 = the true next frame)."""

    env: SkillEnv
    lag = 1

    def step(self):
        env = self.env
        frames = env.start_frames + env.progress + self.lag
        ref = env.motion.get_frame_at(env.clip_ids, frames)
        self.set_state(None, ref.state)
        return self.state


@pytest.fixture(scope="module")
def motion():
    if not LAYUP.exists():
        pytest.skip("shared BallPlay data not present")
    return MotionLibrary(LAYUP)


def make_env(motion, sim_cls=MujocoCPUSimulator, **cfg):
    cfg = SkillEnvConfig(**{"num_envs": 4, "seed": 0, **cfg})
    sim = sim_cls(cfg.num_envs)
    env = SkillEnv(cfg, motion, sim)
    if isinstance(sim, ReplaySimulator):
        sim.env = env
    return env


@needs_data
def test_reset_puts_worlds_on_their_reference(motion):
    env = make_env(motion)
    obs = env.reset()
    assert obs.shape == (4, 902) and torch.isfinite(obs).all()
    ref = env.reference()
    torch.testing.assert_close(env.sim.state.body_pos[:, env._key_bodies], ref.key_body_pos, atol=1e-4, rtol=0)
    assert ((env.start_frames >= 2) & (env.start_frames <= motion.clip_lengths[0] - 2)).all()
    # skill one-hot of the clip label (layup = 31) sits in the last 64 entries
    assert (obs[:, 838:].argmax(-1) == 31).all() and (obs[:, 838:].sum(-1) == 1).all()
    env.close()


@needs_data
def test_reward_compares_state_t_with_reference_t(motion):
    """On a perfect replay the pose/ball terms are exactly 1; comparing with the wrong
    reference frame (the original V1's t+1) would make them drop."""
    env = make_env(motion, ReplaySimulator, state_init=10)
    env.reset()
    for _ in range(5):
        _, reward, done, info = env.step(torch.zeros(4, 156))
        for name in ("r_p", "r_r", "r_o", "r_ig"):
            torch.testing.assert_close(info["reward_terms"][name], torch.ones(4), atol=2e-4, rtol=0, msg=name)
    ReplaySimulator.lag = 2  # physics one frame ahead of the reference = the V1 off-by-one
    try:
        _, _, _, info = env.step(torch.zeros(4, 156))
        assert (info["reward_terms"]["r_p"] < 0.999).all()
    finally:
        ReplaySimulator.lag = 1
    env.close()


@needs_data
def test_episode_times_out_at_segment_end(motion):
    env = make_env(motion, episode_length=8, state_init=2, enable_early_termination=False)
    env.reset()
    dones = []
    for _ in range(7):
        _, _, done, info = env.step(torch.zeros(4, 156))
        dones.append(done.clone())
    # segment length 8 -> the episode's last step is progress 7
    assert dones[-1].all() and not torch.stack(dones[:-1]).any()
    assert info["time_outs"].all() and not info["terminate"].any()
    assert (env.progress == 0).all(), "finished envs restart"
    env.close()


@needs_data
def test_fall_terminates_without_bootstrap(motion):
    env = make_env(motion, state_init=2)
    env.reset()
    low = env.sim.state.joint.clone()
    low.root_pos[:2, 2] = 0.12         # worlds 0 and 1 lie flat on the floor (identity root
    low.root_quat[:2] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # rotation: the Y-up skeleton lies down)
    low.dof_pos[:2] = 0.0
    env.sim.set_state(None, low)
    _, _, done, info = env.step(torch.zeros(4, 156))
    assert not done.any(), "no termination on the first step (progress 1)"
    _, _, done, info = env.step(torch.zeros(4, 156))
    assert info["terminate"][:2].all() and not info["time_outs"][:2].any()
    env.close()


@needs_data
def test_nonfinite_world_is_reset_and_counted(motion):
    env = make_env(motion)
    env.reset()
    bad = env.sim.state.joint.clone()[1:2]
    bad.dof_vel[:] = float("nan")
    env.sim.set_state(torch.tensor([1]), bad)
    obs, reward, done, info = env.step(torch.zeros(4, 156))
    assert info["nonfinite"].tolist() == [False, True, False, False]
    assert done[1] and info["terminate"][1] and reward[1] == 0
    assert info["nonfinite_resets"] == 1
    assert torch.isfinite(obs).all() and not env.sim.nonfinite.any()
    env.close()


@needs_data
def test_set_skill_overrides_until_reset(motion):
    env = make_env(motion)
    env.reset()
    env.set_skill(13, torch.tensor([0, 2]))
    assert env.obs[:, 838:].argmax(-1).tolist() == [13, 31, 13, 31]
    env.reset_envs(torch.tensor([0]))
    assert int(env.compute_obs()[0, 838:].argmax()) == 31
    with pytest.raises(ValueError, match="skill label"):
        env.set_skill(64)
    env.close()


GETUP = SHARED / "BallPlay-V2" / "getup"


@pytest.mark.skipif(not GETUP.exists(), reason="shared BallPlay-V2 getup data not present")
def test_getup_is_body_only_ball_aside_and_never_terminated():
    motion = MotionLibrary(GETUP)
    env = make_env(motion, state_init=2)
    env.reset()
    s = env.sim.state
    d = (s.joint.obj_pos[:, :2] - s.joint.root_pos[:, :2]).norm(dim=-1)
    assert ((d > 1.4) & (d < 5.1)).all(), "the ball starts on the floor, out of the way"
    low_start = s.joint.root_pos[:, 2] < env.cfg.termination_height
    for _ in range(3):
        _, reward, done, info = env.step(torch.zeros(4, 156))
        torch.testing.assert_close(reward, info["reward_terms"]["r_b"])
        assert not info["terminate"].any(), "getup starts low: no fall termination"
    assert (low_start & (env.sim.state.joint.root_pos[:, 2] < env.cfg.termination_height)).any(), \
        "some worlds lie below the fall height, so V1's termination would have fired"
    env.close()
