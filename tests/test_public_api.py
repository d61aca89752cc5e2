"""Every name of the package's public API resolves to a real object."""

import skillmimic


def test_public_api_names_resolve():
    for name in skillmimic.__all__:
        assert getattr(skillmimic, name) is not None, name
    assert skillmimic.make_simulator.__module__ == "skillmimic.sim"
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        skillmimic.nope  # noqa: B018
