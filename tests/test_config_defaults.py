"""One source of truth for config defaults: the dataclasses of ``skillmimic/rl/config.py``
(and the types they nest) hold every default; a YAML file under ``cfg/`` carries only what
its option changes. Fails when a YAML re-states a value it would get anyway, so a default
changed in the schema cannot be silently shadowed by a stale copy in a YAML file."""

from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

from skillmimic.eval.app import EvalConfig
from skillmimic.rl.config import CONFIG_DIR, Config, MotionConfig, PPOConfig, SimConfig, TaskConfig

from helpers import compose

GROUP_SCHEMA = {"task": TaskConfig, "train": PPOConfig, "sim": SimConfig, "motion": MotionConfig}
TOP_SCHEMA = {"config.yaml": Config, "eval.yaml": EvalConfig}
#: Keys an option states even when they equal the default: which option it is (the group's
#: identity, read by resume) and the HLC task's own choices (its task and skill action set).
STATED_ANYWAY = {"task": {"name", "hlc.task", "hlc.control_mapping"}, "train": {"name"}, "motion": {"name"},
                 "sim": {"backend"}}


def _parents(raw: DictConfig, group: str) -> list[Path]:
    """The same-group options a file lists in its defaults (``- skill``), not overrides of other groups."""
    out = []
    for entry in raw.get("defaults", []):
        if isinstance(entry, str) and entry != "_self_" and "/" not in entry:
            out.append(CONFIG_DIR / group / f"{entry}.yaml")
    return out


def _own(path: Path) -> dict:
    """The file's own values as plain data (interpolations unresolved), without defaults/hydra."""
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False) or {}
    return {k: v for k, v in raw.items() if k not in ("defaults", "hydra")}


def _inherited(path: Path, group: str, schema: type) -> DictConfig:
    """What ``path`` would be without its own values: the schema merged with its parent options."""
    base = OmegaConf.structured(schema)
    for parent in _parents(OmegaConf.load(path) or OmegaConf.create({}), group):
        base = OmegaConf.merge(base, _inherited(parent, group, schema), _own(parent))
    return base


def restated(own: dict, base: DictConfig, prefix: str = "") -> list[str]:
    """Keys of ``own`` whose value equals the one ``base`` already has (recursing into sections;
    an optional section that is null in ``base`` is compared with its type's defaults)."""
    out = []
    for key, mine in own.items():
        if key not in base:
            continue                                   # unknown keys: hydra's own error, not ours
        if isinstance(mine, dict):
            sub = base._get_node(key)
            if sub is None or sub._is_none():
                sub = OmegaConf.merge(base, {key: {}})._get_node(key)
            out += restated(mine, sub, f"{prefix}{key}.")
            continue
        theirs = OmegaConf.to_container(base, resolve=False)[key]
        if mine == theirs and isinstance(mine, bool) == isinstance(theirs, bool):
            out.append(f"{prefix}{key}")
    return out


def yaml_files():
    for group, schema in GROUP_SCHEMA.items():
        for path in sorted((CONFIG_DIR / group).glob("*.yaml")):
            yield pytest.param(path, group, schema, id=f"{group}/{path.name}")
    for name, schema in TOP_SCHEMA.items():
        yield pytest.param(CONFIG_DIR / name, None, schema, id=name)


@pytest.mark.parametrize("path, group, schema", list(yaml_files()))
def test_no_yaml_restates_a_schema_default(path, group, schema):
    base = _inherited(path, group, schema) if group else OmegaConf.structured(schema)
    dup = [k for k in restated(_own(path), base) if k not in STATED_ANYWAY.get(group, ())]
    assert not dup, (f"{path.relative_to(CONFIG_DIR.parent)} re-states defaults it inherits from the schema "
                     f"({schema.__module__}.{schema.__name__}) or its parent option: {dup}; delete them there")


def test_the_check_sees_a_restated_default():
    """The check itself: a copied default, also inside an optional section, is found."""
    base = OmegaConf.structured(TaskConfig)
    own = ({"episode_length": 60, "termination_height": 0.25, "reward": {"p": 20.0, "r": 1.0},
                            "hlc": {"llc_steps": 3, "task": "layup"}})
    assert restated(own, base) == ["episode_length", "reward.p", "hlc.llc_steps"]


def test_viewer_yaml_restates_no_default_key():
    from skillmimic.viz.keymap import DEFAULT_SKILL_KEYS, KeyMap

    own = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "viewer.yaml"))["keymap"]
    defaults = {"skills": DEFAULT_SKILL_KEYS, "pause": KeyMap().pause, "reset": KeyMap().reset}
    assert not [k for k, v in own.items() if defaults.get(k) == v]


def test_old_run_config_with_headless_still_loads():
    """``headless`` was retired from the schema; a checkpoint's saved run config that has it
    loads (the key dropped), while any other unknown key is still an error."""
    from omegaconf.errors import ConfigKeyError

    from skillmimic.rl.config import load_run_config, run_config_of

    saved = OmegaConf.to_yaml(compose(["num_envs=4"]))
    old = saved + "headless: true\n"
    cfg = run_config_of({"run_config": old})
    assert cfg.num_envs == 4 and not hasattr(cfg, "headless")
    assert OmegaConf.to_object(load_run_config(old)) == OmegaConf.to_object(load_run_config(saved))
    with pytest.raises(ConfigKeyError):
        load_run_config(saved + "headles: true\n")


def test_task_node_converts_by_field_name_with_the_env_defaults():
    """TaskConfig re-declares the env fields a YAML may set (OmegaConf needs them typed), but
    takes their defaults from SkillEnvConfig and converts by field name: the default task is
    exactly the default env, and every field the two share is carried over."""
    import dataclasses

    from envs.skill import SkillEnvConfig

    shared = {f.name for f in dataclasses.fields(TaskConfig)} & {f.name for f in dataclasses.fields(SkillEnvConfig)}
    assert shared >= {"episode_length", "state_init", "reward", "body_only_labels", "termination_height"}
    assert TaskConfig().env_config(16, None) == SkillEnvConfig()
    task = TaskConfig(episode_length=33, state_init="7", termination_height=0.2, body_only_labels=[10])
    env = task.env_config(5, 9)
    assert (env.num_envs, env.seed, env.episode_length, env.state_init, env.termination_height,
            env.body_only_labels) == (5, 9, 33, 7, 0.2, (10,))
    assert env.reward == task.reward and env.reward is not task.reward
