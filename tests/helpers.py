"""Plain helpers shared by the test files (fixtures built on them live in ``conftest.py``).

Why a module and not only fixtures: module-level constants such as the shared data path are
needed at collection time (``skipif`` marks, parametrisation), where fixtures cannot be used.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: The shared data beside the repository (never copied into it); tests skip cleanly without it.
SHARED = REPO.parent / "shared"
SHARED_MOTIONS = SHARED / "data" / "motions"
DEMO_MOTIONS = REPO / "data" / "motions" / "demo"


def shared_motion(*parts: str) -> Path:
    """A path under the shared motion folder; the calling test is skipped when it is absent."""
    path = SHARED_MOTIONS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared motion data not found at {path}")
    return path
