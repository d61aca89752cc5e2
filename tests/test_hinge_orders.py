"""Per-joint hinge orders: order-aware conversions, FK invariance, the data bounds, the xyz switch."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest
import roma
import torch

from envs.skill import SkillEnvConfig, make_skill_env
from skillmimic.assets.mjcf import SceneConfig
from skillmimic.assets.skeleton import SKELETON_BALLPLAY as SK
from skillmimic.kinematics import ForwardKinematics
from skillmimic.motion import MotionLibrary, find_clips
from skillmimic.motion.euler_report import load_joint_rotations, main as euler_report_main
from skillmimic.motion.reference import wrap_angle
from skillmimic.rotations import (
    EULER_ORDERS, expmap_to_hinge, hinge_angular_velocity, hinge_to_expmap, hinge_to_matrix, matrix_to_hinge,
)
from skillmimic.sim.mujoco_cpu import MujocoCPUSimulator
from skillmimic.state import JointState

from helpers import DEMO, REPO as ROOT, SHARED_MOTIONS as DATA
XYZ = SK.with_hinge_order("xyz")


def _angles(n: int, seed: int = 0) -> torch.Tensor:
    """Random hinge angles (n, 52, 3) away from the singularity (|middle| < 80 deg)."""
    g = torch.Generator().manual_seed(seed)
    a = (torch.rand(n, 52, 3, generator=g, dtype=torch.float64) * 2 - 1) * math.pi
    a[..., 1] *= 80 / 180
    return a


@pytest.mark.parametrize("order", EULER_ORDERS)
def test_order_conversions_match_roma_and_round_trip(order):
    a = _angles(8)
    m = hinge_to_matrix(a, order)
    torch.testing.assert_close(m, roma.euler_to_rotmat(order, a), atol=1e-12, rtol=0)
    torch.testing.assert_close(matrix_to_hinge(m, order), a, atol=1e-10, rtol=0)
    torch.testing.assert_close(expmap_to_hinge(hinge_to_expmap(a, order), order), a, atol=1e-10, rtol=0)
    # angular velocity (parent frame) = the derivative of the composed rotation
    rate = torch.randn_like(a)
    h = 1e-6
    dm = (hinge_to_matrix(a + h * rate, order) - hinge_to_matrix(a - h * rate, order)) / (2 * h)
    w = dm @ m.transpose(-1, -2)
    torch.testing.assert_close(hinge_angular_velocity(a, rate, order),
                               torch.stack([w[..., 2, 1], w[..., 0, 2], w[..., 1, 0]], -1), atol=1e-7, rtol=0)


def test_mixed_orders_are_per_joint_and_the_table_is_mixed():
    a = _angles(4, seed=1)
    m = hinge_to_matrix(a, SK.hinge_orders)
    for j, order in enumerate(SK.hinge_orders):
        torch.testing.assert_close(m[:, j], roma.euler_to_rotmat(order, a[:, j]), atol=1e-12, rtol=0)
    assert SK.hinge_orders[SK.index("L_Shoulder") - 1] == "YXZ" and SK.hinge_orders[0] == "XYZ"
    assert set(XYZ.hinge_orders) == {"XYZ"}
    with pytest.raises(ValueError, match="unknown hinge order"):
        hinge_to_matrix(a, "XYX")
    with pytest.raises(ValueError, match="hinge_order must be"):
        SK.with_hinge_order("zz")


def test_fk_is_the_same_across_orders():
    """One pose, expressed in X-Y-Z angles and in the table's orders: identical bodies and,
    with the rates that produce the same joint angular velocities, identical velocities."""
    n = 6
    a_xyz = _angles(n, seed=2)
    rot = hinge_to_matrix(a_xyz, "XYZ")
    a_tab = matrix_to_hinge(rot, SK.hinge_orders)
    rate_xyz = torch.randn_like(a_xyz)
    h = 1e-6        # rates in the table's orders from the same motion, by central differences
    rate_tab = wrap_angle(matrix_to_hinge(hinge_to_matrix(a_xyz + h * rate_xyz, "XYZ"), SK.hinge_orders)
                          - matrix_to_hinge(hinge_to_matrix(a_xyz - h * rate_xyz, "XYZ"), SK.hinge_orders)) / (2 * h)
    g = torch.Generator().manual_seed(3)
    root = (torch.randn(n, 3, generator=g, dtype=torch.float64), roma.random_unitquat(n, dtype=torch.float64)[:, [3, 0, 1, 2]],
            torch.randn(n, 3, generator=g, dtype=torch.float64), torch.randn(n, 3, generator=g, dtype=torch.float64))
    k_xyz = ForwardKinematics(XYZ)(root[0], root[1], a_xyz.reshape(n, -1), root[2], root[3], rate_xyz.reshape(n, -1))
    k_tab = ForwardKinematics(SK)(root[0], root[1], a_tab.reshape(n, -1), root[2], root[3], rate_tab.reshape(n, -1))
    torch.testing.assert_close(k_tab.pos, k_xyz.pos, atol=1e-12, rtol=0)
    torch.testing.assert_close(k_tab.rot, k_xyz.rot, atol=1e-12, rtol=0)
    torch.testing.assert_close(k_tab.ang_vel, k_xyz.ang_vel, atol=1e-6, rtol=0)
    torch.testing.assert_close(k_tab.lin_vel, k_xyz.lin_vel, atol=1e-6, rtol=0)


# ---------------------------------------------------------------- the shared clips
@pytest.fixture(scope="module")
def converted():
    """Every 4th shared clip (both data sets, every skill; a sample keeps this fast -- the
    full-set figures come from ``python -m skillmimic.motion.euler_report``), converted under
    the table's orders and under X-Y-Z. The reference conversion is one Euler decomposition
    per frame, so one batch over all frames is exactly what the library computes."""
    if not DATA.is_dir():
        pytest.skip(f"shared motion data not found at {DATA}")
    clips = load_joint_rotations(find_clips(DATA)[::4])
    rot = roma.rotvec_to_rotmat(clips.expmap)
    return clips, {"table": matrix_to_hinge(rot, SK.hinge_orders), "xyz": matrix_to_hinge(rot, "XYZ")}


def _joints(mask: torch.Tensor) -> set[str]:
    return {SK.names[j + 1] for j in mask.any(0).nonzero().flatten().tolist()}


def test_every_reference_angle_in_range_and_no_representation_jump(converted):
    """Under the table's orders every hinge angle is in [-pi, pi], and a hinge jumps by more
    than 1 rad between frames only where the recorded joint rotation itself turns by more
    than 0.5 rad -- except a few thumb-tip frames, on the one joint that no Tait-Bryan order
    keeps clear (its middle angle reaches 88 deg in every order). Under X-Y-Z: many such
    jumps, on the shoulders and elbows."""
    clips, dof = converted
    still = clips.pair.unsqueeze(-1) & (clips.moved < 0.5)
    jumps = {}
    for name, angles in dof.items():
        assert angles[clips.valid].abs().max() <= math.pi
        jumps[name] = ((angles[1:] - angles[:-1]).abs().amax(-1) > 1.0) & still
    assert _joints(jumps["table"]) <= {"R_Thumb2", "R_Thumb3"}, _joints(jumps["table"])
    assert int(jumps["table"].sum()) <= 10 < 30 < int(jumps["xyz"].sum())
    assert {"L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow"} <= _joints(jumps["xyz"])


def test_table_orders_keep_joints_off_the_singularity(converted):
    """Middle angle above 75 deg: frequent under X-Y-Z on the arms (19,288 joint-frames over
    all clips), only thumb tips under the table's orders (48)."""
    clips, dof = converted
    near = {name: dof[name][clips.valid][..., 1].abs() > math.radians(75) for name in dof}
    assert _joints(near["table"]) <= {"L_Thumb3", "R_Thumb2", "R_Thumb3"}
    assert near["table"].float().mean() < 1e-4 and near["xyz"].float().mean() > 0.01
    for name in ("L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow"):
        j = SK.index(name) - 1
        assert near["xyz"][:, j].any() and dof["table"][clips.valid][:, j, 1].abs().max() < math.radians(75)


def test_euler_report_command(capsys):
    folder = DATA / "BallPlay-M" / "pass"
    if not folder.is_dir():
        pytest.skip("pass folder not present")
    assert euler_report_main([str(folder)]) == 0
    out = capsys.readouterr().out
    assert "L_Shoulder" in out and "proposed HINGE_ORDERS" in out and "beyond pi" in out
    assert euler_report_main([str(folder / "missing")]) == 2


# ---------------------------------------------------------------- the one switch
def test_xyz_switch_end_to_end():
    """``SceneConfig.hinge_order = "xyz"`` reaches the MJCF, the reference conversion and the
    FK: a world reset onto the reference shows the reference bodies, MuJoCo agrees, and the
    env steps. A library converted for other orders is refused."""
    scene = SceneConfig(hinge_order="xyz")
    env = make_skill_env(SkillEnvConfig(num_envs=2, seed=0), DEMO, scene=scene, num_threads=1)
    try:
        assert set(env.motion.skeleton.hinge_orders) == {"XYZ"} and env.sim.skeleton.hinge_orders == XYZ.hinge_orders
        assert env.sim.model.joint(1 + 3 * (SK.index("L_Shoulder") - 1)).name == "L_Shoulder_x"
        env.reset()
        ref = env.reference()
        torch.testing.assert_close(env.sim.state.body_pos, ref.body_pos, atol=1e-4, rtol=0)
        m, d = env.sim.model, mujoco.MjData(env.sim.model)
        lay = env.sim.layout
        st = env.sim.state.joint
        d.qpos[lay.root_q] = torch.cat([st.root_pos[0], st.root_quat[0]]).double().numpy()
        d.qpos[lay.dof_q] = st.dof_pos[0].double().numpy()
        mujoco.mj_kinematics(m, d)
        np.testing.assert_allclose(env.sim.state.body_pos[0].numpy(), d.xpos[1:54], atol=1e-5)
        obs, reward, done, _ = env.step(torch.zeros(2, env.num_actions))
        assert torch.isfinite(obs).all() and torch.isfinite(reward).all()
        with pytest.raises(ValueError, match="hinge orders"):
            type(env)(env.cfg, MotionLibrary(DEMO), env.sim)
    finally:
        env.close()


def test_hinge_order_is_one_config_value():
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from skillmimic.rl.config import ConfigError, register_configs, validate

    register_configs()
    with initialize_config_dir(str(ROOT / "cfg"), version_base="1.3"):
        default = compose("config")
        xyz = compose("config", overrides=["sim.scene.hinge_order=xyz"])
        bad = compose("config", overrides=["sim.scene.hinge_order=xyx"])
    assert default.sim.scene.hinge_order == "table" and xyz.sim.scene.hinge_order == "xyz"
    validate(OmegaConf.to_object(xyz))
    with pytest.raises(ConfigError, match="sim.scene.hinge_order"):
        validate(OmegaConf.to_object(bad))


def test_hlc_refuses_an_llc_of_another_hinge_order():
    from types import SimpleNamespace

    from skillmimic.rl.policy import check_llc_scene

    run_cfg = SimpleNamespace(sim=SimpleNamespace(scene=SceneConfig(hinge_order="xyz")))
    with pytest.raises(ValueError, match="sim.scene.hinge_order=xyz"):
        check_llc_scene(run_cfg, SceneConfig(), "llc.pth")
    check_llc_scene(run_cfg, SceneConfig(hinge_order="xyz"), "llc.pth")
    import dataclasses

    from skillmimic.assets.mjcf import ObjectConfig

    other = SceneConfig(hinge_order="xyz", object=dataclasses.replace(ObjectConfig(), friction=0.3))
    check_llc_scene(SimpleNamespace(sim=SimpleNamespace(scene=other)), SceneConfig(hinge_order="xyz"), "llc.pth")


def test_table_sim_fk_matches_mujoco_near_the_old_singularity():
    """Bent shoulders and elbows (X-Y-Z middle angle ~90 deg) in the table's orders: the
    simulator's torch FK reports MuJoCo's own body positions."""
    sim = MujocoCPUSimulator(1, num_threads=1)
    try:
        a = torch.zeros(1, 52, 3, dtype=torch.float64)
        for name in ("L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow"):
            a[0, SK.index(name) - 1] = torch.tensor([0.3, 1.55, -0.4], dtype=torch.float64)   # X-Y-Z
        dof = matrix_to_hinge(hinge_to_matrix(a, "XYZ"), SK.hinge_orders).reshape(1, -1)
        z = torch.zeros(1, 3)
        st = JointState(root_pos=torch.tensor([[0.0, 0.0, 1.0]]), root_quat=torch.tensor([[1.0, 0.0, 0.0, 0.0]]),
                        root_lin_vel=z, root_ang_vel=z, dof_pos=dof.float(), dof_vel=torch.zeros(1, 156),
                        obj_pos=torch.tensor([[2.0, 0.0, 1.0]]), obj_quat=torch.tensor([[1.0, 0.0, 0.0, 0.0]]),
                        obj_lin_vel=z, obj_ang_vel=z)
        sim.set_state(None, st)
        d = mujoco.MjData(sim.model)
        d.qpos[sim.layout.root_q] = [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0]
        d.qpos[sim.layout.dof_q] = dof[0].float().double().numpy()
        mujoco.mj_kinematics(sim.model, d)
        np.testing.assert_allclose(sim.state.body_pos[0].numpy(), d.xpos[1:54], atol=1e-5)
        middle = dof.reshape(52, 3)[:, 1]     # X-Y-Z had 1.55 rad here: near the singularity
        assert middle.abs().max() < math.radians(75)
    finally:
        sim.close()
