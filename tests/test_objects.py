"""The rigid object entity: every shape builds and rests where it should, bad configs name
their key, and configs of the ball era (``sim.scene.ball``) still load or fail clearly."""

import math

import mujoco
import numpy as np
import pytest
from helpers import compose
from omegaconf import OmegaConf

from skillmimic.assets.mjcf import SceneConfig, build_scene_xml
from skillmimic.assets.objects import ObjectConfig, ObjectConfigError


def _settle(obj: ObjectConfig, seconds: float = 1.5) -> tuple[mujoco.MjModel, float]:
    """Drop the object from 5 cm above its resting height, 3 m away from the humanoid
    (which is pinned: gravity off for it would change the model, so it is re-posed each step)."""
    model = mujoco.MjModel.from_xml_string(build_scene_xml(SceneConfig(object=obj, self_collision=False)))
    data = mujoco.MjData(model)
    j = model.joint("object")
    qa = int(j.qposadr[0])
    data.qpos[qa:qa + 3] = (3.0, 3.0, obj.resting_height() + 0.05)
    data.qpos[qa + 3:qa + 7] = (1, 0, 0, 0)
    root = model.joint("root")
    q0 = data.qpos.copy()
    for _ in range(int(seconds / model.opt.timestep)):
        mujoco.mj_step(model, data)
        r = int(root.qposadr[0])
        data.qpos[r:r + 7] = q0[r:r + 7]        # keep the humanoid out of the way
        data.qvel[int(root.dofadr[0]):int(root.dofadr[0]) + 6] = 0
    return model, float(data.qpos[qa + 2])


@pytest.mark.parametrize("obj,mj_type", [
    (ObjectConfig(name="crate", shape="box", size=[0.2, 0.15, 0.1], mass=3.0), mujoco.mjtGeom.mjGEOM_BOX),
    (ObjectConfig(name="bottle", shape="cylinder", size=[0.05, 0.12], mass=0.8), mujoco.mjtGeom.mjGEOM_CYLINDER),
    (ObjectConfig(name="roller", shape="capsule", size=[0.06, 0.1], mass=1.0), mujoco.mjtGeom.mjGEOM_CAPSULE),
])
def test_shapes_build_with_their_size_mass_and_rest_on_the_floor(obj, mj_type):
    model, z = _settle(obj)
    g = model.geom("object_geom")
    assert model.geom_type[g.id] == mj_type
    np.testing.assert_allclose(model.geom_size[g.id][:len(obj.size)], obj.size, rtol=1e-7)
    assert model.body_mass[model.body("object").id] == pytest.approx(obj.mass, rel=1e-7)
    assert model.geom_solref[g.id].tolist() == [-obj.contact_stiffness, -obj.contact_damping]
    assert model.geom_friction[g.id][0] == pytest.approx(obj.friction)
    # resting_height() is where it settles (a few mm of contact penetration)
    assert obj.resting_height() - 0.01 < z < obj.resting_height() + 0.002


def test_default_object_is_the_calibrated_ball():
    obj = ObjectConfig()
    assert (obj.shape, obj.size) == ("sphere", [0.12])
    assert obj.mass == pytest.approx(4.0 / 3.0 * math.pi * 0.12**3 * 1000.0)
    assert (obj.friction, obj.restitution, obj.contact_stiffness, obj.contact_damping) == (1.0, 0.8, 20000.0, 21.018)
    assert obj.resting_height() == 0.12


def test_mesh_object_loads_the_file_scaled(tmp_path):
    # a unit cube from z = -0.2 to 0.8 in its file: the file's frame is the object's frame,
    # so it rests with its origin 0.2 * scale above the floor
    v = [(x, y, z) for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.2, 0.8)]
    faces = [(1, 2, 4), (1, 4, 3), (5, 7, 8), (5, 8, 6), (1, 5, 6), (1, 6, 2),
             (3, 4, 8), (3, 8, 7), (1, 3, 7), (1, 7, 5), (2, 6, 8), (2, 8, 4)]
    path = tmp_path / "cube.obj"
    path.write_text("".join(f"v {x} {y} {z}\n" for x, y, z in v) + "".join(f"f {a} {b} {c}\n" for a, b, c in faces))
    obj = ObjectConfig(name="cube", shape="mesh", mesh_file=str(path), size=[0.3], mass=2.0)
    assert obj.resting_height() == pytest.approx(0.06, abs=1e-6)
    model, z = _settle(obj)
    assert model.geom_type[model.geom("object_geom").id] == mujoco.mjtGeom.mjGEOM_MESH
    assert model.body_mass[model.body("object").id] == pytest.approx(2.0)
    assert 0.05 < z < 0.062


@pytest.mark.parametrize("kwargs,words", [
    (dict(shape="cone"), ["sim.scene.object.shape", "cone"]),
    (dict(shape="box", size=[0.1]), ["sim.scene.object.size", "box", "3"]),
    (dict(shape="sphere", size=[-0.1]), ["sim.scene.object.size"]),
    (dict(mass=0.0), ["sim.scene.object.mass"]),
    (dict(shape="mesh", mesh_file=None), ["sim.scene.object.mesh_file"]),
    (dict(shape="mesh", mesh_file="no/such/file.obj"), ["sim.scene.object.mesh_file", "no/such/file.obj", "not a file"]),
    (dict(shape="mesh", mesh_file="model.dae"), ["sim.scene.object.mesh_file", ".obj"]),
    (dict(shape="box", size=[0.1, 0.1, 0.1], mesh_file="x.obj"), ["mesh_file", "shape=mesh"]),
])
def test_bad_object_config_names_the_key(kwargs, words):
    with pytest.raises(ObjectConfigError) as e:
        build_scene_xml(SceneConfig(object=ObjectConfig(**kwargs)))
    for w in words:
        assert w in str(e.value)


def _ball_era_yaml() -> str:
    """A run configuration as a checkpoint of the ball era saved it (sim.scene.ball)."""
    tree = OmegaConf.create(OmegaConf.to_yaml(compose([])))
    del tree.sim.scene["object"]
    tree.sim.scene["ball"] = {"radius": 0.11, "mass": 0.6, "friction": 0.9, "restitution": 0.75,
                              "contact_stiffness": 20000.0, "contact_damping": 30.0}
    return OmegaConf.to_yaml(tree)


def test_checkpoint_config_with_the_old_ball_key_loads_as_the_object():
    from skillmimic.rl.config import run_config_of

    cfg = run_config_of({"run_config": _ball_era_yaml()})
    obj = cfg.sim.scene.object
    assert isinstance(obj, ObjectConfig)
    assert (obj.shape, obj.size, obj.mass, obj.friction, obj.restitution, obj.contact_damping) == \
        ("sphere", [0.11], 0.6, 0.9, 0.75, 30.0)


def test_old_ball_key_on_the_command_line_names_the_new_key():
    from skillmimic.rl.config import ConfigError, check_override_keys

    with pytest.raises(ConfigError, match=r"sim\.scene\.ball is now sim\.scene\.object"):
        check_override_keys(["sim.scene.ball.radius=0.1"])
    check_override_keys(["sim.scene.object.shape=box", "sim.scene.object.size=[0.2,0.15,0.1]"])   # the new keys


def test_object_is_a_typed_config_node():
    from skillmimic.rl.config import ConfigError, validate

    cfg = OmegaConf.to_object(compose(["sim.scene.object.shape=box", "sim.scene.object.size=[0.2,0.15,0.1]",
                                        "sim.scene.object.mass=3"]))
    assert cfg.sim.scene.object == ObjectConfig(shape="box", size=[0.2, 0.15, 0.1], mass=3.0)
    cfg.sim.scene.object.size = [0.2]
    with pytest.raises(ConfigError, match=r"sim\.scene\.object\.size"):
        validate(cfg)


def test_resume_of_a_ball_era_checkpoint_restores_its_ball_as_the_object(tmp_path):
    from skillmimic.rl.runner import resume_config

    given = OmegaConf.to_object(compose([]))
    cfg = resume_config(given, tmp_path / "old.pth", {"run_config": _ball_era_yaml()}, overrides=[])
    assert cfg.sim.scene.object == ObjectConfig(size=[0.11], mass=0.6, friction=0.9, restitution=0.75,
                                                contact_damping=30.0)
