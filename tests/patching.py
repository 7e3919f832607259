"""Setting attributes of our objects from a test, as a checked contract (STYLE rule 15).

A test that sets ``obj._name = value`` keeps passing, and stops testing anything, once
the attribute is renamed: Python simply adds a new one. These helpers refuse to set an
attribute the object does not already have.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

_MISSING = object()


def set_existing(obj: object, name: str, value: object) -> None:
    """``setattr(obj, name, value)``, or ``AttributeError`` if ``obj`` has no ``name``."""
    if getattr(obj, name, _MISSING) is _MISSING:
        raise AttributeError(
            f"{type(obj).__name__} has no attribute {name!r} to set: renamed or removed? "
            "update the test"
        )
    setattr(obj, name, value)


@contextmanager
def patched(obj: object, **values: object) -> Iterator[None]:
    """Set existing attributes of ``obj`` for the ``with`` block; restore them afterwards."""
    saved = {name: getattr(obj, name, _MISSING) for name in values}
    missing = [name for name, old in saved.items() if old is _MISSING]
    if missing:
        set_existing(obj, missing[0], values[missing[0]])  # raises, naming the attribute
    for name, value in values.items():
        setattr(obj, name, value)
    try:
        yield
    finally:
        for name, old in saved.items():
            setattr(obj, name, old)
