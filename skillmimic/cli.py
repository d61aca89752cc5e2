"""What ``train.py`` and ``eval.py`` share: a user error is one line on stderr (exit 2), never
a traceback; Ctrl-C outside training's own handler exits quietly (exit 130); an unknown
command-line key is caught before hydra composes anything, with the closest real key."""

from __future__ import annotations

import sys
from typing import Any, Callable


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean bad input (config, checkpoint, motion, history encoder), not a bug."""
    from .augment.history import HistoryCheckpointError
    from .motion import MotionFileError
    from .checkpoint import CheckpointError
    from .rl.config import ConfigError

    return ConfigError, CheckpointError, MotionFileError, HistoryCheckpointError


def run_guarded(fn: Callable[..., Any], *args: Any, extra_errors: tuple[type[BaseException], ...] = (),
                name: str = "run") -> Any:
    """``fn(*args)``; a user error prints ``error: <message>`` and exits 2, Ctrl-C exits 130
    with ``[skillmimic] <name> interrupted (Ctrl-C)``."""
    try:
        return fn(*args)
    except KeyboardInterrupt:
        print(f"\n[skillmimic] {name} interrupted (Ctrl-C)", file=sys.stderr, flush=True)
        sys.exit(130)
    except user_errors() + tuple(extra_errors) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)


def check_argv(schema: type, argv: list[str] | None = None) -> None:
    """Exit with "did you mean ..." when a command-line key is not in ``schema``."""
    from .rl.config import check_override_keys

    run_guarded(check_override_keys, sys.argv[1:] if argv is None else argv, schema)


__all__ = ["check_argv", "run_guarded", "user_errors"]
