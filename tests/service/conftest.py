"""Fixtures for service-layer tests: settings in a temp dir, a context, tiny data."""

from __future__ import annotations

import pytest

from gsnn_edges.service.context import ServiceContext
from gsnn_edges.service.settings import Settings


@pytest.fixture
def settings_update() -> dict:
    """Settings a test changes (parametrize it)."""
    return {}


@pytest.fixture
def settings(tmp_path, settings_update) -> Settings:
    base = {"stale_after_s": 5, "max_attempts": 2, **settings_update}
    return Settings(
        data_dir=tmp_path / "data", database_url=None, broker_url=None, api_keys="", **base
    )


@pytest.fixture
def queue() -> list[str]:
    return []


@pytest.fixture
def ctx(settings, queue) -> ServiceContext:
    ctx = ServiceContext.from_settings(settings, enqueue=queue.append)
    yield ctx
    ctx.db.dispose()
