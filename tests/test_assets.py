"""The generated humanoid matches the skeleton the BallPlay data was recorded on."""

from __future__ import annotations

import math
import pathlib

import mujoco
import numpy as np
import pytest
import torch

from skillmimic.assets.mjcf import ASSET_DIR, HoopConfig, SceneConfig, build_scene_xml
from skillmimic.assets.skeleton import SKELETON_BALLPLAY as SK
from skillmimic.rotations import hinge_to_matrix, matrix_to_hinge

REFERENCE_XML = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "ballplay_humanoid_reference.xml"


@pytest.fixture(scope="module")
def model():
    return mujoco.MjModel.from_xml_string(build_scene_xml())


def test_structure_mass_and_pd_gains(model):
    assert SK.num_bodies == 53 and SK.num_dof == 156
    assert model.nu == 156 and model.nq == 7 + 156 + 7
    names = [model.body(i).name for i in range(1, 54)]
    assert names == list(SK.names)
    assert abs(model.body_subtreemass[1] - 66.59) < 0.01          # facts §2: 66.59 kg
    ball = model.body("object")
    assert abs(model.body_mass[ball.id] - 7.238) < 0.01           # density 1000, r 0.12
    # position actuators: force = kp (ctrl - q) - kv qdot, with the table's gains per hinge
    np.testing.assert_allclose(model.actuator_gainprm[:, 0], SK.dof_kp)
    np.testing.assert_allclose(model.actuator_biasprm[:, 1], -SK.dof_kp)
    np.testing.assert_allclose(model.actuator_biasprm[:, 2], -SK.dof_kd)
    assert model.actuator("L_Hip_x").gainprm[0] == 500 and model.actuator("R_Index3_z").gainprm[0] == 100
    np.testing.assert_allclose(model.actuator_ctrlrange, [[-math.pi, math.pi]] * 156, rtol=1e-7)
    # no passive joint springs: PD comes only from the actuators
    assert not model.jnt_stiffness.any()
    np.testing.assert_allclose(model.dof_armature[6:162], 0.02)


@pytest.mark.skipif(not REFERENCE_XML.exists(), reason="shared reference skeleton not present")
def test_same_kinematics_and_inertia_as_the_recording_skeleton(model):
    ref = mujoco.MjModel.from_xml_path(str(REFERENCE_XML))
    np.testing.assert_allclose(model.body_pos[2:54], ref.body_pos[2:54], atol=1e-9)  # root placed by state
    np.testing.assert_allclose(model.body_mass[1:54], ref.body_mass[1:54], rtol=1e-6)
    np.testing.assert_allclose(model.body_inertia[1:54], ref.body_inertia[1:54], rtol=1e-5, atol=1e-12)
    # random pose: identical forward kinematics -- the same X-Y-Z angles with hinge_order=xyz,
    # and the same joint rotations in the table's hinge orders
    xyz = mujoco.MjModel.from_xml_string(build_scene_xml(SceneConfig(hinge_order="xyz")))
    rng = np.random.default_rng(0)
    q = rng.uniform(-1, 1, 156)
    rot = hinge_to_matrix(torch.from_numpy(q).reshape(52, 3), "XYZ")
    q_table = matrix_to_hinge(rot, SK.hinge_orders).reshape(-1).numpy()
    xpos = []
    for m, angles in ((ref, q), (xyz, q), (model, q_table)):
        data = mujoco.MjData(m)
        data.qpos[:7] = [0.1, -0.2, 0.9, 0.8, 0.6, 0.0, 0.0]
        data.qpos[7:163] = angles
        mujoco.mj_kinematics(m, data)
        xpos.append(data.xpos[1:54].copy())
    np.testing.assert_allclose(xpos[1], xpos[0], atol=1e-12)
    np.testing.assert_allclose(xpos[2], xpos[0], atol=1e-12)


@pytest.mark.parametrize("hinge_order", ["table", "xyz"])
def test_hinge_order_of_every_body_follows_the_skeleton(hinge_order):
    """Each body lists its three hinges (joints and actuators) in its hinge order, so DOF
    3j, 3j+1, 3j+2 are the first, middle and last Euler angle of joint j."""
    m = mujoco.MjModel.from_xml_string(build_scene_xml(SceneConfig(hinge_order=hinge_order)))
    orders = SK.with_hinge_order(hinge_order).hinge_orders
    assert hinge_order == "xyz" or {"YXZ", "XYZ"} <= set(orders)
    axes = {"x": [1, 0, 0], "y": [0, 1, 0], "z": [0, 0, 1]}
    for j, order in enumerate(orders):
        body = SK.names[j + 1]
        for k, letter in enumerate(order.lower()):
            jnt = m.joint(1 + 3 * j + k)                        # joint 0 is the root
            assert jnt.name == f"{body}_{letter}" and int(jnt.bodyid[0]) == m.body(body).id
            np.testing.assert_array_equal(jnt.axis, axes[letter])
            assert m.actuator(3 * j + k).name == jnt.name and int(m.actuator(3 * j + k).trnid[0]) == jnt.id
            np.testing.assert_allclose(m.jnt_range[jnt.id], [-math.pi, math.pi], rtol=1e-7)
        assert m.jnt_limited[1 + 3 * j]


def test_unknown_hinge_order_is_one_clear_error():
    with pytest.raises(ValueError, match="hinge_order must be 'table' or one of"):
        build_scene_xml(SceneConfig(hinge_order="xzx"))


def test_committed_scene_files_are_current():
    for name, cfg in (("ballplay_scene.xml", SceneConfig()), ("ballplay_hoop_scene.xml", SceneConfig(hoop=HoopConfig()))):
        text = (ASSET_DIR / name).read_text()
        assert build_scene_xml(cfg) in text, f"assets/{name} is stale: run python -m skillmimic.assets.mjcf"
        mujoco.MjModel.from_xml_path(str(ASSET_DIR / name))
