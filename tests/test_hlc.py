"""HLC envs with a scripted low-level controller: goal timing, action -> skill mapping,
layup scoring through the env's own hoop and scoring path, the ballistic descent formula."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from envs.hlc import (LLC_OBS, HLCConfig, HLCEnvConfig, TASKS, ballistic_descent_time, goal_features,
                      make_hlc_env)
from skillmimic.assets.mjcf import SceneConfig
from skillmimic.observations import OBJECT_OBS, HUMANOID_OBS
from skillmimic.sim.mujoco_cpu import MujocoCPUSimulator

from helpers import DEMO, SHARED_MOTIONS
SCENE_OBS = HUMANOID_OBS + OBJECT_OBS


class ScriptedLLC:
    """Zero actions; records the skill label it was asked for at every call."""

    num_obs = LLC_OBS
    num_actions = 156
    run_config = None

    def __init__(self):
        self.labels: list[torch.Tensor] = []

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        assert obs.shape[-1] == LLC_OBS
        self.labels.append(obs[:, SCENE_OBS:].argmax(-1))
        return torch.zeros(obs.shape[0], self.num_actions)


def _has_mjwarp() -> bool:
    try:
        import mujoco_warp  # noqa: F401
    except ImportError:
        return False
    return True


BACKENDS = ["mujoco", pytest.param("mjwarp", marks=pytest.mark.skipif(not _has_mjwarp(), reason="no mujoco_warp"))]


def make_env(task: str, num_envs: int = 3, backend: str = "mujoco", **cfg_kw) -> tuple:
    llc = ScriptedLLC()
    mapping = {"layup": [31, 1, 2, 12, 13, 11, 31], "throwing": [34, 1, 13]}.get(task, [12, 13, 11])
    cfg = HLCEnvConfig(task=task, num_envs=num_envs, seed=3, hlc=HLCConfig(control_mapping=mapping), **cfg_kw)
    device = "cuda" if backend == "mjwarp" and torch.cuda.is_available() else "cpu"
    env = make_hlc_env(cfg, DEMO, llc, scene=SceneConfig(), sim_backend=backend,
                       device=device)
    return env, llc


@pytest.mark.parametrize("task", ["heading", "circling", "layup"])
def test_goal_is_set_before_the_first_observation_of_every_episode(task):
    env, _ = make_env(task)
    try:
        obs = env.reset()
        j = env.sim.state.joint
        expected = goal_features(j.root_pos, j.root_quat, env.goal)
        assert torch.allclose(obs[:, SCENE_OBS:SCENE_OBS + 4], expected, atol=1e-5)
        dist = (env.goal - j.root_pos[:, :2]).norm(dim=-1)
        if task == "circling":
            assert torch.allclose(dist, torch.zeros_like(dist), atol=1e-6)      # centred on the start
        else:
            assert ((dist >= 2.0 - 1e-4) & (dist <= 8.0 + 1e-4)).all()

        # env 0 times out during the next HLC step: the observation returned for it is the
        # first of its new episode and must already carry the new goal
        # circling: the centre is the start position (the same demo frame), the radius is new
        goal_of = (lambda: env.task.radius[:, None]) if task == "circling" else (lambda: env.goal)
        if task == "circling":
            assert torch.equal(obs[:, -1], env.task.radius)
        old_goal = goal_of().clone()
        env.progress[0] = env.cfg.episode_length - 2
        obs, _, done, info = env.step(torch.zeros(env.num_envs, dtype=torch.long))
        assert done.tolist() == [True, False, False] and bool(info["time_outs"][0])
        j = env.sim.state.joint
        assert not torch.allclose(goal_of()[0], old_goal[0])
        assert torch.equal(goal_of()[1:], old_goal[1:])
        expected = goal_features(j.root_pos, j.root_quat, env.goal)
        assert torch.allclose(obs[:, SCENE_OBS:SCENE_OBS + 4], expected, atol=1e-5)
        if task == "circling":
            assert torch.equal(obs[:, -1], env.task.radius)
        if task == "layup":
            # the hoop moved with the goal, rim at the task's (default) height, facing the new start
            hoop = env.sim.hoop_pos[0]
            assert torch.allclose(hoop[:2], env.goal[0]) and hoop[2].item() == pytest.approx(2.5)
            to_start = j.root_pos[0, :2] - env.goal[0]
            yaw = env.sim.hoop_yaw[0].item()
            assert math.cos(yaw - math.atan2(to_start[1].item(), to_start[0].item())) == pytest.approx(1.0)
            assert obs[0, -1].item() == 0.0                          # "scored" flag of the new episode
    finally:
        env.close()


def test_actions_select_skills_through_control_mapping_for_llc_steps_env_steps():
    env, llc = make_env("layup", num_envs=3)
    try:
        env.reset()
        progress = env.progress.clone()
        _, reward, _, info = env.step(torch.tensor([0, 3, 5]))
        assert len(llc.labels) == 3                                   # llc_steps
        for labels in llc.labels:
            assert labels.tolist() == [31, 12, 11]
        assert (env.progress - progress).tolist() == [3, 3, 3]
        # the HLC reward is the mean of the per-step rewards
        assert torch.allclose(reward, info["reward_terms"]["reward"])
        assert env.num_obs == SCENE_OBS + TASKS["layup"].num_obs == 843
        with pytest.raises(ValueError, match=r"\[0, 7\)"):
            env.step(torch.tensor([0, 7, 1]))
    finally:
        env.close()


def _drop_balls(env, offsets: list[tuple[float, float]], height: float = 1.0) -> None:
    """Put each env's ball ``height`` above its rim, shifted by (along, across) the hoop axis, at rest."""
    js = env.sim.state.joint.clone()
    rim, yaw = env.sim.hoop_pos, env.sim.hoop_yaw
    along = torch.stack([torch.cos(yaw), torch.sin(yaw)], -1)
    across = torch.stack([-torch.sin(yaw), torch.cos(yaw)], -1)
    off = torch.tensor(offsets, device=rim.device)
    js.obj_pos = rim + torch.cat([off[:, :1] * along + off[:, 1:] * across,
                                  torch.full((len(off), 1), height, device=rim.device)], -1)
    js.obj_lin_vel = torch.zeros_like(js.obj_lin_vel)
    js.obj_ang_vel = torch.zeros_like(js.obj_ang_vel)
    env.sim.set_state(None, js)


@pytest.mark.parametrize("backend", BACKENDS)
def test_layup_env_counts_one_score_through_the_rim_and_none_for_misses(backend):
    """Scripted balls over the env's own hoop: through the rim centre (one score, even after
    the floor bounce), beside the rim (none), onto the rim tube (deflected off: none)."""
    env, _ = make_env("layup", num_envs=3, backend=backend, enable_early_termination=False)
    try:
        env.reset()
        # third ball: its centre just outside the rim tube, towards the court -> deflected outwards
        r = env.hoop.rim_radius + env.hoop.rim_tube_radius + 0.05
        _drop_balls(env, [(0.0, 0.0), (0.0, 0.6), (r, 0.0)])
        scored_at = None
        min_z = torch.full((3,), 10.0, device=env.device)
        for i in range(40):                                           # 2 s: drop, floor bounce, bounce again
            obs, _, done, info = env.step(torch.ones(3, dtype=torch.long))
            assert not done.any()
            min_z = torch.minimum(min_z, env.sim.state.joint.obj_pos[:, 2])
            if scored_at is None and env.stats["scores"][0] > 0:
                scored_at = i
                assert obs[0, -1].item() == 1.0 and obs[1:, -1].tolist() == [0.0, 0.0]
                assert info["reward_terms"]["scores"][0].item() > 0
        assert env.stats["scores"].tolist() == [1, 0, 0]
        assert scored_at is not None and scored_at < 10                 # the drop takes ~0.45 s
        assert (min_z < 0.2).all(), "every ball reached the floor (none stuck on the rim)"
        # the episode summary reports it
        ep = {k: v.clone() for k, v in env.stats.items()}
        ep["terminated"] = torch.zeros(3, dtype=torch.bool, device=env.device)
        m = env.summarize(ep)
        assert m["success_rate"] == pytest.approx(1 / 3)
        minutes = 3 * ep["length"][0].item() * env.control_dt / 60
        assert m["scores_per_minute"] == pytest.approx(1 / minutes)
    finally:
        env.close()


def test_ballistic_descent_time_is_the_descending_root():
    g = 9.81
    z0 = torch.tensor([1.0, 3.5, 1.0, 3.5, 1.0])
    vz = torch.tensor([7.0, 2.0, -1.0, -3.0, 3.0])
    t = ballistic_descent_time(z0, vz, 3.05, g)
    z_at = z0 + vz * t - 0.5 * g * t**2
    valid = ~torch.isnan(t)
    assert valid.tolist() == [True, True, False, True, False]         # below and falling / apex too low: none
    assert torch.allclose(z_at[valid], torch.full_like(z_at[valid], 3.05), atol=1e-5)
    assert ((vz - g * t)[valid] < 0).all(), "crossing on the way down"
    # the original's (sqrt(.) - vz) / g is that time only for vz = 0
    orig = (torch.sqrt(vz**2 + 2 * g * (z0 - 3.05)) - vz) / g
    assert abs((z0 + vz * orig - 0.5 * g * orig**2)[0].item() - 3.05) > 1.0
    assert ballistic_descent_time(torch.tensor([4.0]), torch.tensor([0.0]), 3.05, g).item() == pytest.approx(
        (torch.sqrt(torch.tensor(2 * g * 0.95)) / g).item())


def test_ballistic_prediction_matches_the_simulated_ball():
    """Free flight in MuJoCo crosses the rim plane where and when the formula says."""
    with MujocoCPUSimulator(1, SceneConfig()) as sim:
        js = sim.state.joint.clone()
        js.root_pos = torch.tensor([[-5.0, 0.0, 0.96]])
        js.obj_pos = torch.tensor([[0.0, 0.0, 1.5]])
        js.obj_lin_vel = torch.tensor([[2.0, -1.0, 7.0]])
        sim.set_state(None, js)
        sim.set_pd_targets(sim.state.joint.dof_pos)
        g = -float(sim.model.opt.gravity[2])
        t_pred = ballistic_descent_time(torch.tensor([1.5]), torch.tensor([7.0]), 3.05, g).item()
        xy_pred = torch.tensor([2.0, -1.0]) * t_pred
        prev, t = sim.state.joint.obj_pos[0].clone(), 0.0
        for _ in range(200):
            ball = sim.step().joint.obj_pos[0].clone()
            t += sim.control_dt
            if prev[2] > 3.05 >= ball[2]:
                s = (prev[2] - 3.05) / (prev[2] - ball[2])
                xy = prev[:2] + s * (ball[:2] - prev[:2])
                t_cross = t - sim.control_dt + s.item() * sim.control_dt
                break
            prev = ball
        else:
            pytest.fail("the ball never came down through 3.05 m")
    assert t_cross == pytest.approx(t_pred, abs=0.01)
    assert torch.allclose(xy, xy_pred, atol=0.03)


def test_goal_features_are_in_the_heading_frame():
    """A humanoid facing world +y (yaw 90 deg) with the goal 3 m ahead sees it at local (3, 0),
    bearing 0, whatever the world bearing (90 deg) is; a goal to its left is at bearing +90 deg."""
    from skillmimic.rotations import heading_yaw, quat_mul, yaw_quat

    # the data's root orientation: local y-up skeleton rotated to z-up, then turned by the yaw
    upright = torch.tensor([[math.cos(0.85), math.sin(0.85), 0.0, 0.0]])
    q = quat_mul(yaw_quat(torch.tensor([math.pi / 2])), upright)
    root = torch.tensor([[1.0, 2.0, 0.9]])
    yaw = heading_yaw(q).item()
    assert yaw == pytest.approx(math.pi / 2, abs=1e-5)
    ahead = torch.tensor([[math.cos(yaw), math.sin(yaw)]])
    left = torch.tensor([[-math.sin(yaw), math.cos(yaw)]])
    f = goal_features(root, q, root[:, :2] + 3.0 * ahead)
    assert torch.allclose(f, torch.tensor([[3.0, 0.0, 1.0, 0.0]]), atol=1e-5)
    f = goal_features(root, q, root[:, :2] + 2.0 * left)
    assert torch.allclose(f, torch.tensor([[0.0, 2.0, 0.0, 1.0]]), atol=1e-5)


def test_hlc_config_validation_names_the_key():
    with pytest.raises(ValueError, match="hlc task must be one of"):
        HLCEnvConfig(task="dunk").validate()
    with pytest.raises(ValueError, match=r"control_mapping.*\[70\]"):
        HLCConfig(control_mapping=[1, 70]).validate("heading")
    bad_radius = dataclasses.replace(HLCConfig(), circling=dataclasses.replace(HLCConfig().circling, radius=[5.0, 2.0]))
    with pytest.raises(ValueError, match="circling.radius"):
        bad_radius.validate("circling")
    bad_radius.validate("heading")          # only the running task's node is read


def test_layup_rim_height_config_and_the_unreachable_warning(caplog):
    """The layup rim height is one task value: the scene's hoop is built for it, a scene hoop
    that disagrees is an error, and a rim above every recorded apex is warned about once."""
    import logging

    from envs import hlc as H
    from envs.hlc import layup as L
    from skillmimic.assets.mjcf import HoopConfig

    layup = HLCEnvConfig(task="layup")
    assert layup.hlc.layup.rim_height == 2.5 < H.RECORDED_BALL_APEX_MAX
    assert H.hlc_scene(None, layup).hoop.rim_height == 2.5
    assert H.hlc_scene(SceneConfig(hoop=HoopConfig()), layup).hoop.rim_height == 2.5     # default hoop: the task's rim
    assert H.hlc_scene(None, HLCEnvConfig(task="heading")).hoop is None
    with pytest.raises(ValueError, match="task.hlc.layup.rim_height"):
        H.hlc_scene(SceneConfig(hoop=HoopConfig(rim_height=2.8)), layup)
    regulation = dataclasses.replace(layup, hlc=dataclasses.replace(
        layup.hlc, layup=dataclasses.replace(layup.hlc.layup, rim_height=3.05)))
    L._warn_unreachable_rim.cache_clear()
    with caplog.at_level(logging.WARNING, logger="envs.hlc.layup"):
        regulation.validate()
        regulation.validate()
        layup.validate()
    warnings = [r for r in caplog.records if "rim_height=3.05" in r.getMessage()]
    assert len(warnings) == 1 and "cannot score" in warnings[0].getMessage()


LAYUP_CLIP = SHARED_MOTIONS / "BallPlay-M" / "layup"


@pytest.mark.skipif(not LAYUP_CLIP.exists(), reason="shared BallPlay-M data not present")
def test_recorded_layup_scores_once_in_the_default_hoop():
    """The recorded BallPlay-M layup's ball, replayed kinematically through the default layup
    env's hoop (placed where the ball comes down, facing the clip's start), then left to the
    physics engine for the rest of its free flight, scores exactly once through the env's own
    scoring path. Its recorded path never touches the rim (it rises through the net-free ring
    and falls back through it: the clip's layup goes nearly straight up, apex 2.82 m)."""
    from skillmimic.motion import columns as C
    from skillmimic.motion.io import load_clip

    clip = load_clip(sorted(LAYUP_CLIP.glob("*.pt"))[0]).double()
    ball, root = clip[:, C.OBJ_POS], clip[:, C.ROOT_POS]
    vel = torch.cat([ball[1:2] - ball[:1], ball[1:] - ball[:-1]]) * C.FPS       # backward differences
    env, _ = make_env("layup", num_envs=1, enable_early_termination=False)
    try:
        env.reset()
        h = env.cfg.hlc.layup.rim_height
        assert h == 2.5 and env.sim.hoop_pos[0, 2].item() == pytest.approx(h)
        assert ball[:, 2].max().item() > h + env.hoop.rim_tube_radius + 0.12 + 0.1    # clears the rim by > 10 cm
        # where the free flight after the last recorded frame comes down through the rim plane
        t = ballistic_descent_time(ball[-1:, 2], vel[-1:, 2], h, env.gravity)
        assert t.item() > 0
        rim_xy = ball[-1, :2] + vel[-1, :2] * t
        to_start = root[0, :2] - rim_xy
        env.sim.set_hoop_pose(None, torch.cat([rim_xy, torch.tensor([h])])[None].float(),
                              torch.atan2(to_start[1], to_start[0])[None].float())
        # the recorded path clears the rim tube: distance from the tube's centre circle
        ring = env.hoop.rim_radius + env.hoop.rim_tube_radius
        rho = (ball[:, :2] - rim_xy).norm(dim=-1)
        assert torch.sqrt((rho - ring) ** 2 + (ball[:, 2] - h) ** 2).min().item() > 0.12 + env.hoop.rim_tube_radius

        js = env.sim.state.joint.clone()
        js.root_pos[:, :2] = (rim_xy + 5.0 * to_start / to_start.norm()).float()   # humanoid well away
        live = torch.ones(1, dtype=torch.bool)
        for k in range(len(ball)):                                   # kinematic replay, the env's scoring
            prev = env.sim.state.joint.obj_pos.clone()
            js.obj_pos, js.obj_lin_vel = ball[k:k + 1].float(), vel[k:k + 1].float()
            env.sim.set_state(None, js)
            if k:
                env.task.step(env, prev, env.sim.state, live)
        assert env.stats["scores"].item() == 0, "the recorded clip ends above the rim (2.62 m)"
        for _ in range(15):                                          # the rest of the flight: physics
            env.step(torch.ones(1, dtype=torch.long))
        assert env.sim.state.joint.obj_pos[0, 2].item() < h - 1.0
        assert env.stats["scores"].item() == 1
    finally:
        env.close()
