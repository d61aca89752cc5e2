"""Box carry: skill imitation of the box-lift demo, with a box as the scene's object.

Why a task of its own, when the skill env already imitates any clip with any object: the
task names the pairing of data and object, and it refuses a scene whose object is still the
default ball -- imitating a box lift with a basketball in the hands trains on nonsense
without any error. Everything else is the skill env (:mod:`envs.skill`): same observation
(the object features do not depend on its shape), same reward, same PPO settings.

The task's YAML, ``cfg/task/box_carry.yaml``, puts the box (``cfg/object/box_demo.yaml``) at
``sim.scene.object`` and the generated clip (``cfg/motion/demo_box.yaml``) in ``motion``; the
checkpoint's run configuration records both, so ``eval.py`` rebuilds the same scene. This
module and those YAML files are all the task adds (``docs/objects.md``).
"""

from __future__ import annotations

from .registry import TaskSpec, register_task
from .skill import SkillEnvConfig, make_skill_env


def _make_env(env_cfg: SkillEnvConfig, motion_path, *, sim_backend="mujoco", scene=None, device="cpu",
              sim_kwargs=None, augment=None):
    obj = scene.object if scene is not None else None
    if obj is None or obj.shape == "sphere":
        raise ValueError("task box_carry needs a non-ball object at sim.scene.object (cfg/task/box_carry.yaml "
                         "selects +object@sim.scene.object=box_demo); the scene has "
                         f"{'the default ball' if obj is None else f'a {obj.shape} ({obj.name})'}")
    return make_skill_env(env_cfg, motion_path, sim_backend=sim_backend, scene=scene, device=device,
                          augment=augment, **(sim_kwargs or {}))


register_task(TaskSpec(name="box_carry", config_type=SkillEnvConfig, make_env=_make_env, policy="continuous",
                       evaluation="imitation", description="skill imitation of the box-lift demo with a box object"))
