"""The bundle of collaborators every service function receives."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from gsnn_edges.service.artifacts import ArtifactStore
from gsnn_edges.service.db import Database
from gsnn_edges.service.settings import Settings

Enqueue = Callable[[str], None]


def new_id(prefix: str) -> str:
    """Opaque, URL-safe resource id such as ``job_3f2a...``."""
    return f"{prefix}_{secrets.token_hex(12)}"


def _no_queue(job_id: str) -> None:
    raise RuntimeError(f"no job queue configured; cannot enqueue job {job_id!r}")


@dataclass
class ServiceContext:
    """Settings, database, artifact store and the job queue (``enqueue(job_id)``)."""

    settings: Settings
    db: Database
    store: ArtifactStore
    enqueue: Enqueue = field(default=_no_queue)

    @classmethod
    def from_settings(cls, settings: Settings, enqueue: Enqueue | None = None) -> ServiceContext:
        """Open the database (migrating it to the newest schema) and the artifact store."""
        db = Database(settings)
        db.migrate()
        store = ArtifactStore(settings.data_dir / "artifacts")
        return cls(settings=settings, db=db, store=store, enqueue=enqueue or _no_queue)
