"""BallPlay motion clips: loading and validation (:mod:`.io`), conversion to a joint-space
reference (:mod:`.reference`), and the batched, device-resident library (:mod:`.library`)."""

from .io import MotionFileError, clip_label, find_clips, load_clip, skill_name
from .library import MotionLibrary, ReferenceFrame
from .reference import ClipReference, convert_clip
from .skills import SKILLS, Skill, check_label, label_of, skill

__all__ = [
    "MotionLibrary", "ReferenceFrame", "MotionFileError", "load_clip", "find_clips",
    "clip_label", "skill_name", "ClipReference", "convert_clip", "SKILLS", "Skill", "skill", "label_of", "check_label",
]
