"""The hoop asset and score detection, on the MuJoCo engine with a scripted ball."""

from __future__ import annotations

import math

import torch

from skillmimic.assets.mjcf import HoopConfig, SceneConfig
from skillmimic.scoring import rim_crossings
from skillmimic.sim.mujoco_cpu import MujocoCPUSimulator
from skillmimic.state import JointState

HOOP = HoopConfig()


def scene_state(obj_pos, obj_vel) -> JointState:
    n = len(obj_pos)
    z = torch.zeros(n, 3)
    return JointState(
        root_pos=torch.tensor([-4.0, 0.0, 0.96]).repeat(n, 1),  # humanoid well away from the hoop
        root_quat=torch.tensor([math.sqrt(0.5), math.sqrt(0.5), 0.0, 0.0]).repeat(n, 1),
        root_lin_vel=z, root_ang_vel=z, dof_pos=torch.zeros(n, 156), dof_vel=torch.zeros(n, 156),
        obj_pos=torch.as_tensor(obj_pos, dtype=torch.float32),
        obj_quat=torch.tensor([1.0, 0.0, 0.0, 0.0]).repeat(n, 1),
        obj_lin_vel=torch.as_tensor(obj_vel, dtype=torch.float32), obj_ang_vel=z,
    )


def count_scores(obj_pos, obj_vel, rim=(2.0, 1.0, HOOP.rim_height), yaw=0.0, steps=150):
    n = len(obj_pos)
    with MujocoCPUSimulator(n, SceneConfig(hoop=HOOP)) as sim:
        sim.set_hoop_pose(None, torch.tensor([rim] * n), torch.full((n,), yaw))
        sim.set_state(None, scene_state(obj_pos, obj_vel))
        sim.set_pd_targets(sim.state.joint.dof_pos)
        scores = torch.zeros(n, dtype=torch.long)
        min_z = torch.full((n,), 10.0)
        prev = sim.state.joint.obj_pos.clone()
        for _ in range(steps):
            ball = sim.step().joint.obj_pos
            scores += rim_crossings(prev, ball, sim.hoop_pos, HOOP.rim_radius).long()
            min_z = torch.minimum(min_z, ball[:, 2])
            prev = ball.clone()
    return scores, min_z


def test_drop_through_rim_scores_once_and_miss_scores_none():
    rim = (2.0, 1.0, HOOP.rim_height)
    scores, min_z = count_scores(
        obj_pos=[[2.0, 1.0, 4.0], [2.0, 1.6, 4.0], [2.0, 1.0 + HOOP.rim_radius + 0.01, 4.0]],
        obj_vel=[[0.0, 0.0, 0.0]] * 3, rim=rim)
    assert scores.tolist()[:2] == [1, 0]
    # a ball dropped right onto the rim tube bounces off it: it must not count
    assert scores[2] == 0
    assert (min_z[:2] < 0.2).all(), "both balls reach the floor"


def test_thrown_ball_scores_through_a_rotated_hoop():
    """A ballistic shot from 4 m out (apex above the rim) drops into a hoop facing the shooter."""
    rim = torch.tensor([3.0, -2.0, HOOP.rim_height])
    start = torch.tensor([3.0 + 4.0, -2.0, 2.0])
    t_flight = 1.0
    vel = (rim + torch.tensor([0.0, 0.0, 0.0]) - start) / t_flight
    vel[2] = (rim[2] - start[2] + 0.5 * 9.81 * t_flight**2) / t_flight
    scores, _ = count_scores([start.tolist()], [vel.tolist()], rim=rim.tolist(), yaw=0.0)
    assert scores.tolist() == [1]
    # the same throw aimed 0.6 m to the side misses
    scores, _ = count_scores([(start + torch.tensor([0.0, 0.6, 0.0])).tolist()], [vel.tolist()], rim=rim.tolist())
    assert scores.tolist() == [0]


def test_ball_bouncing_back_up_through_the_rim_does_not_count():
    prev = torch.tensor([[0.0, 0.0, 3.0]])
    now = torch.tensor([[0.0, 0.0, 3.1]])
    rim = torch.tensor([[0.0, 0.0, 3.05]])
    assert not rim_crossings(prev, now, rim, 0.2286).any()
    assert rim_crossings(now, prev, rim, 0.2286).all()
