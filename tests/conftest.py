"""Fixtures shared by the test files; plain helpers and paths are in ``helpers.py``."""

from __future__ import annotations

import pytest

from helpers import SPARSE


@pytest.fixture(scope="module")
def motion():
    """The BallPlay-V2 sparse clips as a float32 MotionLibrary, one per test module: the
    default data of the V2 tests. A test module with other data defines its own ``motion``
    fixture, which takes precedence. Skips the test when the shared data is absent."""
    if not SPARSE.exists():
        pytest.skip("shared BallPlay-V2 data not present")
    from skillmimic.motion import MotionLibrary

    return MotionLibrary(SPARSE)
