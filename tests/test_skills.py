"""The dataset skill table (skillmimic/motion/skills.py) is the one place label rules live:
it agrees with the data's file names, and labels chosen in configs are checked against it."""

import pytest

from helpers import SHARED_MOTIONS, compose, shared_motion
from skillmimic.eval.success import CRITERIA, DEFAULT_SKILL_CRITERIA
from skillmimic.motion import clip_label, find_clips
from skillmimic.motion.skills import (
    BODY_ONLY_LABELS, NO_TERMINATION_LABELS, SKILLS, check_label, clip_file_name, label_of, skill,
)


def test_table_rules_and_lookups():
    assert label_of("getup") == 0 and label_of("run_no_object") == 10 and label_of("run") == 13
    assert skill(31).name == "layup" and skill("pickup").clip_weight == 2.0
    assert BODY_ONLY_LABELS == (0, 10) and NO_TERMINATION_LABELS == (0,)
    assert all(s.criterion is None or s.criterion in CRITERIA for s in SKILLS)
    assert DEFAULT_SKILL_CRITERIA[5] == "shot" and 2 not in DEFAULT_SKILL_CRITERIA
    assert clip_file_name("run", "demo_dribble_1") == "013_demo_dribble_1.pt"
    with pytest.raises(KeyError, match="dunk.*skill table"):
        skill("dunk")


@pytest.mark.parametrize("value, message", [(70, r"keyx=70: a skill label must be in the skill table"),
                                            ("abc", r"keyx='abc': a skill label must be an integer"),
                                            (8, r"keyx=8")])
def test_check_label_names_key_and_value(value, message):
    with pytest.raises(ValueError, match=message):
        check_label(value, "keyx")
    assert check_label("13", "keyx") == 13


def test_shared_data_labels_match_the_table():
    """Every clip of BallPlay-M and BallPlay-V2 has a label of the table, and each labelled
    folder of a skill holds that skill's clips (e.g. BallPlay-M/run -> 013 run)."""
    shared_motion()
    seen = set()
    for clip in find_clips(SHARED_MOTIONS):
        label = clip_label(clip)
        row = skill(label)
        assert row.in_data, clip
        seen.add(label)
    for folder, name in (("BallPlay-M/run", "run"), ("BallPlay-M/layup", "layup"), ("BallPlay-M/lrun", "lrun"),
                         ("BallPlay-V2/getup", "getup"), ("BallPlay-V2/run_no_object", "run_no_object")):
        assert {clip_label(c) for c in find_clips(SHARED_MOTIONS / folder)} == {label_of(name)}, folder
    assert {0, 1, 10, 13, 31}.issubset(seen)


def test_config_labels_are_checked_against_the_table():
    """A task YAML's labels (V2 rules, HLC action sets) fail validation naming the key and value."""
    from omegaconf import OmegaConf

    from skillmimic.rl.config import ConfigError, validate

    bad_rule = OmegaConf.to_object(compose(["task.body_only_labels=[0,8]"]))
    bad_hlc = OmegaConf.to_object(compose(["task=hlc_heading", "task.hlc.control_mapping=[12,70]", "motion=demo"]))
    with pytest.raises(ConfigError, match=r"task.body_only_labels\[1\]=8: a skill label must be in the skill table"):
        validate(bad_rule)
    with pytest.raises(ConfigError, match=r"task.hlc.control_mapping\[1\]=70"):
        validate(bad_hlc)
