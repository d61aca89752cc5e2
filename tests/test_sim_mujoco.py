"""MuJoCo C engine: state round trips, resets of subsets, contacts, NaN guard, threading."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
import torch

from skillmimic.rotations import quat_to_matrix, quat_rotate, quat_conj
from skillmimic.sim import make_simulator
from skillmimic.sim.mujoco_cpu import MujocoCPUSimulator

from helpers import random_state, standing_state


@pytest.fixture(scope="module")
def sim4():
    sim = MujocoCPUSimulator(4, num_threads=2)
    yield sim
    sim.close()


@pytest.mark.parametrize("kinematics", ["mujoco", "torch"])
def test_set_state_round_trip_and_bodies_match_mujoco(sim4, kinematics):
    """Both ways of computing the bodies (MuJoCo's mj_kinematics/mj_comVel, the default, and
    the shared torch FK) are checked against mj_forward + mj_objectVelocity."""
    own = None
    if kinematics != sim4.body_kinematics:
        sim4 = own = MujocoCPUSimulator(4, num_threads=2, body_kinematics=kinematics)
    st = random_state(4)
    sim4.set_state(None, st)
    s = sim4.state
    for name in ("root_pos", "root_quat", "dof_pos", "dof_vel", "root_lin_vel", "root_ang_vel",
                 "obj_pos", "obj_lin_vel", "obj_ang_vel"):
        torch.testing.assert_close(getattr(s.joint, name), getattr(st, name), atol=1e-5, rtol=1e-5, msg=name)
    # Independent check of the reported bodies against MuJoCo's own kinematics.
    m, d = sim4.model, mujoco.MjData(sim4.model)
    lay = sim4.layout
    for w in range(4):
        d.qpos[lay.root_q] = torch.cat([st.root_pos[w], st.root_quat[w]]).numpy()
        d.qpos[lay.dof_q] = st.dof_pos[w].numpy()
        d.qvel[lay.root_v] = torch.cat([st.root_lin_vel[w],
                                        quat_rotate(quat_conj(st.root_quat[w]), st.root_ang_vel[w])]).numpy()
        d.qvel[lay.dof_v] = st.dof_vel[w].numpy()
        mujoco.mj_forward(m, d)
        np.testing.assert_allclose(s.body_pos[w].numpy(), d.xpos[1:54], atol=1e-5)
        np.testing.assert_allclose(s.body_rot[w].reshape(53, 9).numpy(), d.xmat[1:54], atol=1e-5)
        vel = np.zeros((53, 6))
        for b in range(53):
            mujoco.mj_objectVelocity(m, d, mujoco.mjtObj.mjOBJ_BODY, b + 1, vel[b], 0)
        np.testing.assert_allclose(s.body_ang_vel[w].numpy(), vel[:, :3], atol=1e-4)
        # MuJoCo reports linear velocity at the body COM; ours is at the body origin.
        com_lin = s.body_lin_vel[w].numpy() + np.cross(s.body_ang_vel[w].numpy(), d.xipos[1:54] - d.xpos[1:54])
        np.testing.assert_allclose(com_lin, vel[:, 3:], atol=1e-4)
    if own is not None:
        own.close()


def test_engine_and_torch_body_kinematics_agree_while_stepping():
    """The default (MuJoCo's kinematics, float64) and the torch FK (float32) report the same
    bodies to float32 rounding, after steps and after a teleport of some worlds."""
    a, b = MujocoCPUSimulator(3, body_kinematics="torch"), MujocoCPUSimulator(3)
    assert b.body_kinematics == "mujoco"

    def assert_same():
        for k, tol in (("body_pos", 1e-5), ("body_rot", 1e-5), ("body_lin_vel", 1e-4), ("body_ang_vel", 1e-4)):
            x, y = getattr(a.state, k), getattr(b.state, k)
            assert x.dtype == y.dtype == torch.float32 and x.shape == y.shape, k
            assert torch.allclose(x, y, atol=tol), f"{k}: max gap {float((x - y).abs().max()):.2e}"

    for s in (a, b):
        s.set_state(None, random_state(3, seed=5))
        s.set_pd_targets(0.3 * torch.randn(3, 156, generator=torch.Generator().manual_seed(0)))
    assert_same()
    for _ in range(4):
        for s in (a, b):
            s.step()
        assert_same()
    for s in (a, b):
        s.set_state(torch.tensor([1]), standing_state(1))
    assert_same()
    for s in (a, b):
        s.close()
    with pytest.raises(ValueError, match="body_kinematics"):
        MujocoCPUSimulator(1, body_kinematics="warp")


def test_reset_subset_leaves_other_worlds_alone(sim4):
    sim4.set_state(None, standing_state(4))
    sim4.set_pd_targets(torch.zeros(4, 156))
    for _ in range(3):
        sim4.step()
    before = sim4.state.joint.clone()
    new = random_state(2, seed=3)
    sim4.set_state(torch.tensor([1, 3]), new)
    after = sim4.state.joint
    torch.testing.assert_close(after.dof_pos[[0, 2]], before.dof_pos[[0, 2]])
    torch.testing.assert_close(after.root_pos[[0, 2]], before.root_pos[[0, 2]])
    torch.testing.assert_close(after.dof_pos[[1, 3]], new.dof_pos, atol=1e-6, rtol=0)


def test_teleport_of_some_worlds_reports_what_a_full_refresh_would():
    """set_state(ids) recomputes only those rows of ``state``; every field must equal, bit
    for bit and in the same memory layout, what recomputing all worlds gives -- also for a
    non-finite world and a repeated id (counted once)."""
    import dataclasses

    sim = MujocoCPUSimulator(6, num_threads=2)
    sim.set_state(None, random_state(6, seed=1))
    sim.set_pd_targets(torch.zeros(6, 156))
    for _ in range(2):
        sim.step()
    count0 = sim.nonfinite_count
    new = random_state(3, seed=4)
    new.dof_vel[1, 7] = float("nan")
    sim.set_state(torch.tensor([4, 1, 4]), new[[0, 1, 0]])
    partial = sim.state
    assert sim.nonfinite.tolist() == [False, True, False, False, False, False]
    assert sim.nonfinite_count == count0 + 1
    sim._refresh()                                 # all worlds from the engine
    full = sim.state
    assert sim.nonfinite_count == count0 + 1
    pairs = [(f.name, getattr(partial, f.name), getattr(full, f.name)) for f in dataclasses.fields(full)
             if f.name not in ("joint", "raw")]
    pairs += [(f.name, getattr(partial.joint, f.name), getattr(full.joint, f.name))
              for f in dataclasses.fields(full.joint)]
    for name, a, b in pairs:
        assert torch.equal(a, b) and a.stride() == b.stride(), name
    sim.close()


def test_ball_drop_bounces_and_reports_floor_contact():
    with make_simulator("mujoco", 2) as sim:
        sim.set_state(None, standing_state(2, ball_height=1.2))
        sim.set_pd_targets(torch.zeros(2, 156))
        contact_steps, heights = [], []
        for i in range(90):
            s = sim.step()
            heights.append(float(s.joint.obj_pos[0, 2]))
            if s.obj_floor_contact[0]:
                contact_steps.append(i)
                assert s.obj_contact_force[0, 2] > 0, "floor pushes the ball up"
        # free fall 1.08 m takes ~0.47 s = 28 control steps; the first contact is reported then
        assert contact_steps and 24 <= contact_steps[0] <= 32
        assert min(heights) > 0.12 - 0.03, "ball must not sink through the floor"
        assert max(heights[contact_steps[0]:]) > 0.6, "ball bounces back up"


def test_standing_contact_force_balances_weight():
    with make_simulator("mujoco", 1) as sim:
        sim.set_state(None, standing_state(1))
        s0 = sim.state
        sim.set_pd_targets(s0.joint.dof_pos)
        fz = []
        for i in range(60):
            s = sim.step()
            if i >= 30:
                fz.append(float(s.contact_forces[0, :, 2].sum()))
        weight = float(sim.model.body_subtreemass[1]) * 9.81
        assert abs(np.mean(fz) - weight) / weight < 0.1
        toes_and_ankles = [sim.skeleton.index(n) for n in ("L_Ankle", "R_Ankle", "L_Toe", "R_Toe")]
        assert s.contact_forces[0, toes_and_ankles, 2].sum() > 0.5 * weight


def test_nan_guard_flags_only_the_bad_world(sim4):
    sim4.set_state(None, standing_state(4))
    sim4.set_pd_targets(torch.zeros(4, 156))
    count0 = sim4.nonfinite_count
    bad = random_state(1)
    bad.dof_vel[0, 5] = float("nan")
    sim4.set_state(torch.tensor([2]), bad)
    sim4.step()
    assert sim4.nonfinite.tolist() == [False, False, True, False]
    assert sim4.nonfinite_count == count0 + 1
    s = sim4.state
    assert torch.isfinite(s.body_pos).all() and torch.isfinite(s.contact_forces).all()
    sim4.step()
    assert sim4.nonfinite_count == count0 + 1, "a flagged world is counted once"
    sim4.set_state(torch.tensor([2]), standing_state(1))
    sim4.step()
    assert not sim4.nonfinite.any()


def test_threads_do_not_change_results():
    outs = []
    for threads in (1, 2):
        with MujocoCPUSimulator(3, num_threads=threads) as sim:
            sim.set_state(None, random_state(3, seed=7))
            sim.set_pd_targets(torch.zeros(3, 156))
            for _ in range(5):
                sim.step()
            outs.append(sim.state.body_pos.clone())
    torch.testing.assert_close(outs[0], outs[1], atol=0, rtol=0)


def test_bad_arguments_are_reported():
    with MujocoCPUSimulator(2) as sim:
        with pytest.raises(ValueError, match="PD targets"):
            sim.set_pd_targets(torch.zeros(2, 10))
        with pytest.raises(IndexError, match="out of range"):
            sim.set_state(torch.tensor([5]), random_state(1))
        with pytest.raises(ValueError, match="state batch"):
            sim.set_state(torch.tensor([0, 1]), random_state(1))
    with pytest.raises(ValueError, match="unknown sim backend"):
        make_simulator("physx", 1)
