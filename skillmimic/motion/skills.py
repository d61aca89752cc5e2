"""The dataset skill table: skill label <-> name <-> the rules the original attaches to it.

Why one table: a clip's skill label (its file name's first three digits, ``013_...`` -> 13)
selects the policy's one-hot condition, and several floors give some labels special
treatment -- the body-only reward of the skills without a ball, getup's missing early
termination, pick-up's double sampling weight, the success criterion of each skill, the
viewer's keys, the HLC action sets. Those rules are properties of the skill, so they live
here once and everything else looks them up (by name, e.g. ``label_of("getup")``).

Labels and names are those of the BallPlay data (reference facts V1 §1, V2 §1): BallPlay-M's
folders and SkillMimic-V2's locomotion and shot classes. Three labels (032, 033, 035) have no
clip in either data set; the original viewer binds keys to them, so they are listed unnamed.

Adding a skill (e.g. a new data set's clips ``050_*.pt``): add one :class:`Skill` row below.
Labels a user chooses in YAML (viewer keys, HLC action sets, eval skills) are checked against
this table with :func:`check_label`; clip labels on disk need only fit the one-hot
(:data:`~skillmimic.motion.columns.NUM_SKILLS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from .columns import NUM_SKILLS


@dataclass(frozen=True)
class Skill:
    """One skill label and its rules."""

    label: int                     # the clip file name's first three digits; one-hot index
    name: str                      # unique; "label_NNN" for the labels with no known skill
    description: str
    # No object: rewarded by the body term alone, the ball put aside at reset, pose-only
    # similarity in STG/STF and the history encoder (V2's getup and run without ball).
    body_only: bool = False
    early_termination: bool = True # False: a fall does not end the episode (getup starts on the floor)
    clip_weight: float = 1.0       # multiplier of the clip sampling weight (the original's pick-up x2)
    criterion: str | None = None   # success criterion (skillmimic.eval.success.CRITERIA); None: undefined
    in_data: bool = True           # False: no clip of it in BallPlay-M or BallPlay-V2


SKILLS: tuple[Skill, ...] = (
    Skill(0, "getup", "get up from the floor (V2)", body_only=True, early_termination=False, criterion="getup"),
    Skill(1, "pickup", "pick the ball up (BallPlay-M pick_40, V2 pickup_*)", clip_weight=2.0, criterion="pickup"),
    Skill(2, "rebound", "rebound (the original README's W key calls it shot)"),
    Skill(3, "catch", "BallPlay-M folder catch"),
    Skill(4, "pass", "BallPlay-M folder pass"),
    Skill(5, "shot_style1", "jump shot, style 1", criterion="shot"),
    Skill(6, "shot_style2", "jump shot, style 2", criterion="shot"),
    Skill(7, "shot_style3", "jump shot, style 3", criterion="shot"),
    Skill(9, "shot", "shot (V2)", criterion="shot"),
    Skill(10, "run_no_object", "run without the ball (V2)", body_only=True, criterion="run_no_object"),
    Skill(11, "lrun", "dribble left", criterion="run"),
    Skill(12, "rrun", "dribble right", criterion="run"),
    Skill(13, "run", "dribble forward", criterion="run"),
    Skill(23, "turnhook", "BallPlay-M folder turnhook"),
    Skill(31, "layup", "layup", criterion="layup"),
    Skill(32, "label_032", "bound to X in the original viewer", in_data=False),
    Skill(33, "label_033", "bound to C in the original viewer", in_data=False),
    Skill(34, "turnlayup", "turnaround layup", criterion="layup"),
    Skill(35, "label_035", "bound to B in the original viewer", in_data=False),
    Skill(40, "rturn2lhand", "BallPlay-M folder rturn2lhand"),
    Skill(41, "back", "BallPlay-M folder back"),
    Skill(42, "turn", "BallPlay-M folder turn"),
    Skill(43, "legturn", "BallPlay-M folder legturn"),
    Skill(44, "lleg_style1", "BallPlay-M folder lleg_style1"),
    Skill(45, "lleg_style2", "BallPlay-M folder lleg_style2"),
)

_BY_LABEL = {s.label: s for s in SKILLS}
_BY_NAME = {s.name: s for s in SKILLS}
assert len(_BY_LABEL) == len(SKILLS) and len(_BY_NAME) == len(SKILLS), "skill labels and names must be unique"
assert all(0 <= s.label < NUM_SKILLS for s in SKILLS), "skill labels must fit the one-hot"


def skill(key: int | str) -> Skill:
    """The table row of a label (int) or a name (str); ``KeyError`` naming the known ones."""
    row = _BY_NAME.get(key) if isinstance(key, str) else _BY_LABEL.get(int(key))
    if row is None:
        raise KeyError(f"skill {key!r} is not in the skill table (skillmimic/motion/skills.py); known: {describe()}")
    return row


def label_of(name: str) -> int:
    """The label of a skill name: ``label_of("run") == 13``."""
    return skill(name).label


def clip_file_name(name: str, stem: str) -> str:
    """A clip file name carrying a skill's label: ``clip_file_name("run", "demo_1") == "013_demo_1.pt"``."""
    return f"{label_of(name):03d}_{stem}.pt"


def labels_where(pred: Callable[[Skill], bool]) -> tuple[int, ...]:
    """Sorted labels of the skills with a property, e.g. ``labels_where(lambda s: s.body_only)``."""
    return tuple(s.label for s in SKILLS if pred(s))


def describe(labels: Iterable[int] | None = None) -> str:
    """``"000 getup, 001 pickup, ..."`` for messages."""
    rows = SKILLS if labels is None else [skill(x) for x in labels]
    return ", ".join(f"{s.label:03d} {s.name}" for s in rows)


def check_label(value, key: str) -> int:
    """A label chosen in a config, as int; ``ValueError`` naming ``key`` and the value when it
    is not an integer or not a label of the table."""
    try:
        label = int(value)
        ok = label == value or str(label) == str(value).strip()
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{key}={value!r}: a skill label must be an integer, e.g. {label_of('run')} ({describe()})")
    if label not in _BY_LABEL:
        raise ValueError(f"{key}={value!r}: a skill label must be in the skill table "
                         f"(skillmimic/motion/skills.py): {describe()}")
    return label


#: Skills without an object: body-only reward, ball put aside, pose-only similarity (0, 10).
BODY_ONLY_LABELS: tuple[int, ...] = labels_where(lambda s: s.body_only)
#: Skills whose episodes have no early termination (0 getup).
NO_TERMINATION_LABELS: tuple[int, ...] = labels_where(lambda s: not s.early_termination)
#: Label -> success criterion name, for the labels that have one.
SKILL_CRITERIA: dict[int, str] = {s.label: s.criterion for s in SKILLS if s.criterion is not None}

__all__ = ["Skill", "SKILLS", "skill", "label_of", "clip_file_name", "labels_where", "describe", "check_label",
           "BODY_ONLY_LABELS", "NO_TERMINATION_LABELS", "SKILL_CRITERIA"]
