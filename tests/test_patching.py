"""The test helper that sets attributes only where they already exist."""

from __future__ import annotations

import pytest

from patching import patched, set_existing


class _Thing:
    def __init__(self) -> None:
        self._size = 3


def test_set_existing_sets_an_attribute_the_object_has():
    thing = _Thing()
    set_existing(thing, "_size", 5)
    assert thing._size == 5


def test_set_existing_refuses_a_renamed_attribute():
    thing = _Thing()
    with pytest.raises(AttributeError, match=r"_Thing has no attribute '_group_size'"):
        set_existing(thing, "_group_size", None)
    assert not hasattr(thing, "_group_size")


def test_patched_restores_and_refuses_unknown_names():
    thing = _Thing()
    with patched(thing, _size=None):
        assert thing._size is None
    assert thing._size == 3
    with pytest.raises(AttributeError, match="'_sise'"), patched(thing, _size=1, _sise=2):
        pass
    assert thing._size == 3 and not hasattr(thing, "_sise")
