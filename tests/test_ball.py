"""The ball: configured mass/size, calibrated bounce, no tunnelling through the floor."""

import math

import mujoco
import numpy as np
import pytest

from skillmimic.assets.calibrate_ball import (
    ball_drop_model, calibrate, drop_test, measure_restitution, settle,
)
from skillmimic.assets.mjcf import ObjectConfig, PhysicsConfig, SceneConfig, build_scene_xml


def _ball_geom(model):
    return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "object_geom")


@pytest.mark.parametrize("height", [0.5, 1.0, 2.0, 3.0])
def test_default_restitution_within_tolerance(height):
    cfg = SceneConfig()
    (r,) = drop_test(cfg, (height,))
    assert abs(r.restitution - cfg.object.restitution) <= 0.05, r
    assert abs(r.restitution_velocity - cfg.object.restitution) <= 0.05, r
    assert measure_restitution(cfg, height) == pytest.approx(r.restitution)


def test_default_damping_is_the_calibrated_value():
    cfg = SceneConfig()
    found = calibrate(cfg).object.contact_damping
    assert found == pytest.approx(cfg.object.contact_damping, rel=0.02)


def test_calibrate_hits_another_target():
    cfg = calibrate(SceneConfig(), target=0.6, heights=(0.5, 1.0, 2.0))
    assert cfg.object.contact_damping > SceneConfig().object.contact_damping
    e = [r.restitution for r in drop_test(cfg, (0.5, 1.0, 2.0))]
    assert np.mean(e) == pytest.approx(0.6, abs=0.01)


def test_unreachable_target_is_reported():
    cfg = SceneConfig(physics=PhysicsConfig(timestep=1 / 120, substeps=2))
    cfg.object.contact_stiffness = 80000.0     # a 4-step contact period at 1/120 s: unstable
    with pytest.raises(ValueError, match="out of reach"):
        calibrate(cfg, heights=(1.0,))


def test_ball_comes_to_rest_on_the_floor():
    cfg = SceneConfig()
    z, speed = settle(cfg, drop_height=5.0, duration=20.0)
    # a discrete-contact micro-bounce of < 1 mm may persist; no sinking, no runaway
    assert cfg.object.size[0] - 0.005 < z < cfg.object.size[0] + 0.002
    assert speed < 0.1


def test_fast_impact_does_not_tunnel():
    model = ball_drop_model(SceneConfig())
    data = mujoco.MjData(model)
    data.qpos[:7] = (0, 0, 0.5, 1, 0, 0, 0)
    data.qvel[2] = -15.0                      # a hard spike, 3x a dribble
    z = []
    for _ in range(int(2.0 / model.opt.timestep)):
        mujoco.mj_step(model, data)
        z.append(data.qpos[2])
    assert min(z) > 0.0                       # centre never below the floor plane
    assert data.qpos[2] > 0.1                 # and the ball is above it afterwards


def test_mass_and_radius_as_configured():
    model = mujoco.MjModel.from_xml_string(build_scene_xml(SceneConfig()))
    ball = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "object")
    assert model.geom_size[_ball_geom(model), 0] == pytest.approx(0.12)
    assert model.body_mass[ball] == pytest.approx(4 / 3 * math.pi * 0.12**3 * 1000, rel=1e-6)

    custom = SceneConfig(object=ObjectConfig(size=[0.1], mass=0.6))
    model = mujoco.MjModel.from_xml_string(build_scene_xml(custom))
    assert model.geom_size[_ball_geom(model), 0] == pytest.approx(0.1)
    assert model.body_mass[ball] == pytest.approx(0.6)


def test_drop_model_matches_scene_ball():
    cfg = SceneConfig()
    full = mujoco.MjModel.from_xml_string(build_scene_xml(cfg))
    drop = ball_drop_model(cfg)
    assert drop.nbody == 2 and drop.nu == 0
    assert drop.opt.timestep == full.opt.timestep and drop.opt.integrator == full.opt.integrator
    for attr in ("geom_size", "geom_solref", "geom_solimp", "geom_friction", "geom_priority"):
        np.testing.assert_array_equal(getattr(drop, attr)[_ball_geom(drop)], getattr(full, attr)[_ball_geom(full)])
    assert drop.geom_solref[_ball_geom(drop)].tolist() == [-cfg.object.contact_stiffness, -cfg.object.contact_damping]
