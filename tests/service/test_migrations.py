"""Alembic migrations on SQLite and PostgreSQL, and that they match the models."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from gsnn_edges.service.db import Database
from gsnn_edges.service.models import Base
from gsnn_edges.service.settings import Settings


def _check(db: Database) -> None:
    db.migrate()
    db.migrate()  # idempotent: a second start is a no-op
    tables = set(inspect(db.engine).get_table_names())
    assert {"graphs", "datasets", "jobs", "alembic_version"} <= tables
    with db.engine.connect() as conn:
        mc = MigrationContext.configure(conn, opts={"compare_type": False})
        diff = compare_metadata(mc, Base.metadata)
    assert diff == [], f"models and migrations differ: {diff}"


def test_migrations_sqlite_upgrade_matches_models(tmp_path) -> None:
    db = Database(Settings(data_dir=tmp_path, database_url=None))
    try:
        _check(db)
    finally:
        db.dispose()


@pytest.mark.services
def test_migrations_postgresql_upgrade_matches_models(tmp_path, pg_url) -> None:
    db = Database(Settings(data_dir=tmp_path, database_url=pg_url))
    try:
        _check(db)
    finally:
        db.dispose()
