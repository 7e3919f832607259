"""Alembic environment: runs on the connection handed over by ``db.Database.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from gsnn_edges.service.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from gsnn_edges.service.settings import get_settings

    engine = create_engine(get_settings().resolved_database_url)
    with engine.connect() as conn:
        _run(conn)


run_migrations_online()
