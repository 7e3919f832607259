"""The states of a training job, shared by the service, the API and the client."""

from __future__ import annotations

from enum import Enum


class JobStatus(str, Enum):
    """``queued -> running -> succeeded | failed | cancelled``.

    A ``str`` enum (``enum.StrEnum`` needs Python 3.11): members compare equal to their
    strings, as the database and the JSON hold them. Member names equal their values, so
    a driver that stores an enum by name (psycopg does) stores the same text.
    """

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    def __str__(self) -> str:
        return self.value

    @property
    def is_terminal(self) -> bool:
        """The job will not change state again."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})
