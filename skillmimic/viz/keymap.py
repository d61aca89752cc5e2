"""The viewer's key map: keyboard keys -> skill labels, pause and reset.

Why a separate module: the key map is configuration (``cfg/viewer.yaml``), and the
handler that applies it is a plain object, so both are tested without a display or a
window. Keys are named as GLFW names them (``LEFT``, ``SPACE``, ``Q``, ``0``); the handler
receives GLFW key codes, which is what ``mujoco.viewer``'s ``key_callback`` passes.

Default map (the original viewer's keys, V1 facts §3, plus SkillMimic-V2's 0 and 1):
LEFT 011 dribble left, RIGHT 012 dribble right, UP 013 dribble forward, Q 001 pick up,
W 002 (rebound in BallPlay-M; the README calls it "shot", V2 rebinds W to its shot 009),
E 031 layup, X 032, C 033, R 034 turnaround layup, B 035, 0 000 getup, 1 010 run without
ball; SPACE pauses/resumes, BACKSPACE resets.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..motion.skills import check_label, label_of

#: GLFW key codes of the named keys (printable keys are their upper-case ASCII code).
_NAMED = {
    "SPACE": 32, "APOSTROPHE": 39, "COMMA": 44, "MINUS": 45, "PERIOD": 46, "SLASH": 47, "SEMICOLON": 59,
    "EQUAL": 61, "LEFT_BRACKET": 91, "BACKSLASH": 92, "RIGHT_BRACKET": 93, "GRAVE_ACCENT": 96,
    "ESCAPE": 256, "ENTER": 257, "TAB": 258, "BACKSPACE": 259, "INSERT": 260, "DELETE": 261, "RIGHT": 262,
    "LEFT": 263, "DOWN": 264, "UP": 265, "PAGE_UP": 266, "PAGE_DOWN": 267, "HOME": 268, "END": 269,
    **{f"F{i}": 289 + i for i in range(1, 13)},
}

DEFAULT_SKILL_KEYS: dict[str, int] = {key: label_of(name) for key, name in {
    "LEFT": "lrun", "RIGHT": "rrun", "UP": "run", "Q": "pickup", "W": "rebound", "E": "layup", "X": "label_032",
    "C": "label_033", "R": "turnlayup", "B": "label_035", "0": "getup", "1": "run_no_object",
}.items()}


def key_code(name: str) -> int:
    """GLFW key code of a key name (``'LEFT'``, ``'q'``, ``'0'``, ``'F5'``)."""
    key = str(name).strip()
    upper = key.upper()
    if upper in _NAMED:
        return _NAMED[upper]
    if len(key) == 1 and (key.isalnum() or key in "`-=[]\\;',./"):
        return ord(key.upper())
    raise ValueError(f"unknown key name {name!r}: use a letter, a digit or one of {', '.join(_NAMED)}")


def key_name(code: int) -> str:
    for name, c in _NAMED.items():
        if c == code:
            return name
    return chr(code) if 32 < code < 127 else f"<{code}>"


@dataclass
class KeyMap:
    """Key names for each action; :meth:`codes` resolves and checks them."""

    skills: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_SKILL_KEYS))
    pause: str = "SPACE"
    reset: str = "BACKSPACE"

    def codes(self) -> dict[int, tuple[str, int | None]]:
        """GLFW code -> (action, skill label or None); raises on bad or doubly bound keys."""
        out: dict[int, tuple[str, int | None]] = {}

        def bind(name, action, label=None):
            code = key_code(name)
            if code in out:
                raise ValueError(f"key {name!r} is bound twice ({out[code][0]} and {action})")
            out[code] = (action, label)

        for name, label in self.skills.items():
            bind(name, "skill", check_label(label, f"keymap.skills.{name}"))
        bind(self.pause, "pause")
        bind(self.reset, "reset")
        return out

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> "KeyMap":
        unknown = set(m) - {"skills", "pause", "reset"}
        if unknown:
            raise ValueError(f"unknown keymap entries {sorted(unknown)}; expected skills, pause, reset")
        skills = dict(m.get("skills", DEFAULT_SKILL_KEYS))
        km = cls(skills={str(k): check_label(v, f"keymap.skills.{k}") for k, v in skills.items()},
                 pause=str(m.get("pause", "SPACE")), reset=str(m.get("reset", "BACKSPACE")))
        km.codes()
        return km

    @classmethod
    def load(cls, path: str | Path) -> "KeyMap":
        """The ``keymap`` node of a YAML file such as ``cfg/viewer.yaml``."""
        from omegaconf import OmegaConf

        node = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        if not isinstance(node, dict) or "keymap" not in node:
            raise ValueError(f"{path}: no 'keymap' entry")
        return cls.from_mapping(node["keymap"])

    def describe(self) -> str:
        skills = "  ".join(f"{k}->{int(v):03d}" for k, v in self.skills.items())
        return f"skills: {skills}   pause: {self.pause}   reset: {self.reset}"


class KeyHandler:
    """Applies key presses to a target that has ``set_skill(label)`` (a SkillEnv, or the
    viewer's dataset player). ``handle_key`` is what ``mujoco.viewer`` calls, from its UI
    thread; it takes :attr:`lock`, which the viewer loop holds while it steps, so a skill
    switch never lands in the middle of a step."""

    def __init__(self, target, keymap: KeyMap | None = None, lock: threading.RLock | None = None):
        self.target = target
        self.keymap = keymap or KeyMap()
        self._codes = self.keymap.codes()
        self.lock = lock or threading.RLock()
        self.paused = False
        self.skill: int | None = None
        self._reset = False
        self.last_message = ""

    def handle_key(self, keycode: int) -> str | None:
        """Act on one key press; returns the action ('skill', 'pause', 'reset') or None."""
        action = self._codes.get(int(keycode))
        if action is None:
            return None
        kind, label = action
        with self.lock:
            if kind == "skill":
                try:
                    self.target.set_skill(label)
                except ValueError as e:          # e.g. no clip of that skill to replay
                    self.last_message = f"skill {label:03d}: {e}"
                    return None
                self.skill = label
                self.last_message = f"skill -> {label:03d} ({key_name(int(keycode))})"
            elif kind == "pause":
                self.paused = not self.paused
                self.last_message = "paused" if self.paused else "playing"
            else:
                self._reset = True
                self.last_message = "reset"
        return kind

    def take_reset(self) -> bool:
        """True once after a reset key press."""
        with self.lock:
            requested, self._reset = self._reset, False
        return requested


__all__ = ["KeyMap", "KeyHandler", "DEFAULT_SKILL_KEYS", "key_code", "key_name"]
