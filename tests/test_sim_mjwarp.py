"""MuJoCo Warp engine on CPU: state round trips, resets of subsets, contacts, NaN guard, overflow.

Kernel compilation dominates the cost (tens of seconds from an empty Warp cache), so every
test uses the same model and world count; only capacities and the graph switch vary, and
those are runtime parameters, not compiled variants.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

pytest.importorskip("mujoco_warp")

from skillmimic.sim import make_simulator  # noqa: E402
from skillmimic.sim.mujoco_warp import MujocoWarpSimulator  # noqa: E402

from helpers import random_state, standing_state  # noqa: E402

N = 4


@pytest.fixture(scope="module")
def sim():
    s = MujocoWarpSimulator(N)
    yield s
    s.close()


def test_selected_by_name_and_state_lives_in_warp_memory(sim):
    s = make_simulator("mjwarp", N)
    assert isinstance(s, MujocoWarpSimulator) and s.backend == "mjwarp"
    s.close()
    # The torch views alias Warp's arrays (no copies): a write through torch is seen by Warp.
    assert sim._qpos.data_ptr() == sim._d.qpos.ptr and sim._ctrl.data_ptr() == sim._d.ctrl.ptr
    sim.set_pd_targets(torch.full((N, 156), 0.25))
    np.testing.assert_allclose(sim._d.ctrl.numpy(), 0.25)


def test_set_state_round_trip(sim):
    st = random_state(N)
    sim.set_state(None, st)
    s = sim.state
    for name in ("root_pos", "root_quat", "dof_pos", "dof_vel", "root_lin_vel", "root_ang_vel",
                 "obj_pos", "obj_quat", "obj_lin_vel", "obj_ang_vel"):
        # float32 engine: a few ulps of the largest component
        torch.testing.assert_close(getattr(s.joint, name), getattr(st, name), atol=2e-6, rtol=1e-6, msg=name)
    # ...and the engine's own arrays hold it
    lay = sim.layout
    np.testing.assert_allclose(sim._d.qpos.numpy()[:, lay.dof_q], st.dof_pos.numpy(), atol=1e-6)
    # reported state is a snapshot, not a view the next step overwrites
    before = s.body_pos.clone()
    sim.set_pd_targets(torch.zeros(N, 156))
    sim.step()
    torch.testing.assert_close(s.body_pos, before, atol=0, rtol=0)


def test_reset_subset_leaves_other_worlds_alone(sim):
    sim.set_state(None, standing_state(N))
    sim.set_pd_targets(torch.zeros(N, 156))
    for _ in range(3):
        sim.step()
    before = sim.state.joint.clone()
    warm_before = sim._warm.clone()
    new = random_state(2, seed=3)
    sim.set_state(torch.tensor([1, 3]), new)
    after = sim.state.joint
    for name in ("dof_pos", "dof_vel", "root_pos", "obj_pos"):
        torch.testing.assert_close(getattr(after, name)[[0, 2]], getattr(before, name)[[0, 2]], atol=0, rtol=0)
    torch.testing.assert_close(after.dof_pos[[1, 3]], new.dof_pos, atol=1e-6, rtol=0)
    torch.testing.assert_close(sim._warm[[0, 2]], warm_before[[0, 2]], atol=0, rtol=0)
    assert (sim._warm[[1, 3]] == 0).all(), "a reset world starts the solver cold"
    assert (sim.state.contact_forces[[1, 3]] == 0).all(), "no stale contact readings after a reset"


def test_ball_drop_bounces_and_reports_floor_contact(sim):
    sim.set_state(None, standing_state(N, ball_height=1.2))
    sim.set_pd_targets(torch.zeros(N, 156))
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
    assert sim.overflow_count == 0


def test_standing_contact_force_balances_weight(sim):
    sim.set_state(None, standing_state(N))
    sim.set_pd_targets(sim.state.joint.dof_pos)
    fz = []
    for i in range(40):
        s = sim.step()
        if i >= 20:
            fz.append(s.contact_forces[:, :, 2].sum(-1))
    weight = float(sim.model.body_subtreemass[1]) * 9.81
    mean = torch.stack(fz).mean(0)
    assert ((mean - weight).abs() / weight < 0.1).all(), (mean, weight)


def test_nan_world_is_flagged_alone_and_does_not_poison_the_others(sim):
    steps = 12
    # Reference: all worlds healthy.
    sim.set_state(None, standing_state(N, ball_height=1.2))
    sim.set_pd_targets(torch.zeros(N, 156))
    clean = [sim.step().body_pos.clone() for _ in range(steps)]
    # Same start, but world 2 holds NaN (and world 2's is the kind of state that would flood the
    # shared contact pool if it were stepped).
    count0 = sim.nonfinite_count
    sim.set_state(None, standing_state(N, ball_height=1.2))
    bad = random_state(1)
    bad.dof_vel[0, 5] = float("nan")
    bad.root_pos[0, 2] = float("nan")
    sim.set_state(torch.tensor([2]), bad)
    assert sim.nonfinite.tolist() == [False, False, True, False]
    for k in range(steps):
        s = sim.step()
        assert sim.nonfinite.tolist() == [False, False, True, False]
        assert torch.isfinite(s.body_pos).all() and torch.isfinite(s.contact_forces).all()
        # healthy worlds evolve exactly as without the bad one (pooled contacts, same kernels)
        torch.testing.assert_close(s.body_pos[[0, 1, 3]], clean[k][[0, 1, 3]], atol=1e-5, rtol=0)
    assert sim.nonfinite_count == count0 + 1, "a flagged world is counted once"
    # the engine itself parked the world at a finite state
    assert np.isfinite(sim._d.qpos.numpy()).all() and np.isfinite(sim._d.qvel.numpy()).all()
    assert sim.overflow_count == 0
    sim.set_state(torch.tensor([2]), standing_state(1))
    sim.step()
    assert not sim.nonfinite.any()


def test_exploded_world_is_flagged_by_the_engine(sim):
    """Finite but beyond MuJoCo's divergence bound (1e10): the base class's finiteness check
    passes it, the engine's own per-substep check must catch and park it."""
    sim.set_state(None, standing_state(N))
    sim.set_pd_targets(torch.zeros(N, 156))
    count0 = sim.nonfinite_count
    fast = standing_state(1)
    fast.root_lin_vel[0, 2] = 5e11
    sim.set_state(torch.tensor([1]), fast)
    assert not sim.nonfinite.any()
    sim.step()
    assert sim.nonfinite.tolist() == [False, True, False, False]
    assert sim.nonfinite_count == count0 + 1
    # parked at qpos0 (then it simply keeps simulating from there, like MuJoCo C's auto-reset)
    root = sim._d.qpos.numpy()[1, sim.layout.root_q][:3]
    np.testing.assert_allclose(root, sim.model.qpos0[sim.layout.root_q][:3], atol=0.05)
    assert np.abs(sim._d.qvel.numpy()[1]).max() < 1e3
    sim.set_state(torch.tensor([1]), standing_state(1))
    sim.step()
    assert not sim.nonfinite.any()


def test_graph_replay_matches_eager_stepping(sim):
    init = random_state(N, seed=11)
    init.root_pos[:, 2] = 1.0
    outs = []
    with MujocoWarpSimulator(N, graph=False) as eager:
        for s in (sim, eager):
            s.set_state(None, init)
            s.set_pd_targets(torch.zeros(N, 156))
            for _ in range(6):
                s.step()
            outs.append((s.state.body_pos.clone(), s.state.contact_forces.clone()))
    assert sim._graph is not None and eager._graph is None
    torch.testing.assert_close(outs[0][0], outs[1][0], atol=1e-6, rtol=0)
    torch.testing.assert_close(outs[0][1], outs[1][1], atol=1e-3, rtol=1e-4)


def test_overflow_is_counted_and_logged_never_silent(caplog):
    with MujocoWarpSimulator(N, nconmax=2, njmax=16) as tiny:
        tiny.set_state(None, standing_state(N))       # ~18 contacts and ~72 rows per world
        tiny.set_pd_targets(torch.zeros(N, 156))
        with caplog.at_level(logging.WARNING, logger="skillmimic.sim.mujoco_warp"):
            tiny.step()
        assert tiny.overflow_count == tiny.substeps, "every substep overflowed"
        assert any("overflow" in r.getMessage() and "NEFC" in r.getMessage() for r in caplog.records)
        assert (tiny.world_overflow_counts == tiny.substeps).all()
        peaks = tiny.capacity_peaks()
        assert peaks["nefc_per_world"] > 16
        # Counted, not re-reported: the next check only reports new overflows.
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="skillmimic.sim.mujoco_warp"):
            tiny.step()
        assert tiny.overflow_count == 2 * tiny.substeps
        assert len([r for r in caplog.records if "overflow" in r.getMessage()]) == 1


def test_deferred_overflow_check_reports_when_read():
    with MujocoWarpSimulator(N, nconmax=2, njmax=16, overflow_check_interval=1000) as tiny:
        tiny.set_state(None, standing_state(N))
        tiny.set_pd_targets(torch.zeros(N, 156))
        tiny.step()
        assert tiny._overflow_reported == 0, "no host read before the interval"
        assert tiny.overflow_count == tiny.substeps, "reading the counter checks"


def test_bad_arguments_are_reported():
    with pytest.raises(ValueError, match="nconmax and njmax"):
        MujocoWarpSimulator(1, nconmax=0)
    with pytest.raises(ValueError, match="'cpu' or 'cuda'"):
        MujocoWarpSimulator(1, device="meta")


def test_failed_graph_capture_falls_back_to_eager_stepping(monkeypatch, caplog):
    import warp as wp

    class Broken:
        def __init__(self, *a, **k):
            raise RuntimeError("capture unsupported here")

    monkeypatch.setattr(wp, "ScopedCapture", Broken)
    with MujocoWarpSimulator(N) as s, caplog.at_level(logging.WARNING, logger="skillmimic.sim.mujoco_warp"):
        s.set_state(None, standing_state(N))
        s.set_pd_targets(torch.zeros(N, 156))
        s.step()
        s.step()
        assert s._graph is None and not s.use_graph
        assert not s._m.opt.graph_conditional, "retried without conditional nodes first"
        assert sum("graph capture failed" in r.getMessage() for r in caplog.records) == 2
        assert torch.isfinite(s.state.body_pos).all() and s._control_steps == 2


def test_warp_body_kinematics_match_the_torch_fk():
    """body_kinematics="warp" reads MuJoCo Warp's xpos/xmat/cvel (recomputed for the final
    state of each step and after teleports); it must report what the torch FK reports."""
    a, b = make_simulator("mjwarp", N), make_simulator("mjwarp", N, body_kinematics="warp")
    start = random_state(N)
    targets = torch.zeros(N, 156)

    def assert_same():
        for k, tol in (("body_pos", 1e-5), ("body_rot", 1e-5), ("body_lin_vel", 1e-4), ("body_ang_vel", 2e-4)):
            x, y = getattr(a.state, k), getattr(b.state, k)
            assert torch.allclose(x, y, atol=tol), f"{k}: max gap {float((x - y).abs().max()):.2e}"

    for s in (a, b):
        s.set_state(None, start)
    assert_same()
    for _ in range(3):
        for s in (a, b):
            s.set_pd_targets(targets)
            s.step()
        assert_same()
    for s in (a, b):                       # a teleport of some worlds is seen at once
        s.set_state(torch.tensor([1]), standing_state(1))
    assert_same()
    with pytest.raises(ValueError, match="body_kinematics"):
        make_simulator("mjwarp", N, body_kinematics="fk")
