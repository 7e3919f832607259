"""Engine and session factory, and Alembic migrations run on start."""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from gsnn_edges.service.errors import ServiceUnavailableError
from gsnn_edges.service.settings import Settings

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_PG_MIGRATION_LOCK = 7_411_902  # arbitrary advisory lock id for schema upgrades


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and cross-thread use."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:  # a DB-API connection
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class Database:
    """Engine plus session factory for one settings object."""

    def __init__(self, settings: Settings) -> None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.url = settings.resolved_database_url
        self.engine = make_engine(self.url)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        self._lock_path = settings.data_dir.resolve() / ".migrate.lock"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that is closed (and rolled back if uncommitted) on exit.

        Raises:
            ServiceUnavailableError: the database cannot be reached or is locked (the API
                answers 503 with Retry-After instead of a 500).
        """
        try:
            with self.sessionmaker() as session:
                yield session
        except (OperationalError, InterfaceError) as exc:
            log.warning("database unavailable: %s", exc)
            raise ServiceUnavailableError(
                "the database is unavailable; retry in a few seconds"
            ) from exc

    def migrate(self) -> None:
        """Upgrade the schema to the newest Alembic revision (serialised across processes)."""
        if self.engine.dialect.name == "postgresql":
            with self.engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
                try:
                    _upgrade(conn)
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK})
                    conn.commit()
            return
        with open(self._lock_path, "w") as lock, self.engine.connect() as conn:
            fcntl.flock(lock, fcntl.LOCK_EX)
            _upgrade(conn)

    def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


def _upgrade(conn: Connection) -> None:
    logging.getLogger("alembic").setLevel(logging.WARNING)  # before its import-time INFO
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")
    conn.commit()
