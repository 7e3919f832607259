"""The bundle of collaborators every service function receives."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from gsnn_edges.service.artifacts import ArtifactStore
from gsnn_edges.service.db import Database
from gsnn_edges.service.settings import Settings

Enqueue = Callable[[str], None]
EnqueueMany = Callable[[list[str]], None]


def new_id(prefix: str) -> str:
    """Opaque, URL-safe resource id such as ``job_3f2a...``."""
    return f"{prefix}_{secrets.token_hex(12)}"


def _no_queue(job_id: str) -> None:
    raise RuntimeError(f"no job queue configured; cannot enqueue job {job_id!r}")


@dataclass
class ServiceContext:
    """Settings, database, artifact store and the job queue: ``enqueue(job_id)``, and
    ``enqueue_many(job_ids)`` for jobs meant to run at once (a job's replicas or its
    confirmation's chunks; Celery sends them as a group; by default one ``enqueue``
    each)."""

    settings: Settings
    db: Database
    store: ArtifactStore
    enqueue: Enqueue = field(default=_no_queue)
    enqueue_many: EnqueueMany | None = None

    def __post_init__(self) -> None:
        if self.enqueue_many is None:
            self.enqueue_many = self._enqueue_each

    def _enqueue_each(self, job_ids: list[str]) -> None:
        for job_id in job_ids:  # reads self.enqueue at call time (tests may swap it)
            self.enqueue(job_id)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        enqueue: Enqueue | None = None,
        enqueue_many: EnqueueMany | None = None,
    ) -> ServiceContext:
        """Open the database (migrating it to the newest schema) and the artifact store."""
        db = Database(settings)
        db.migrate()
        store = ArtifactStore(settings.data_dir / "artifacts")
        return cls(settings, db, store, enqueue or _no_queue, enqueue_many)
