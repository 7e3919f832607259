"""SQLAlchemy models: graphs, datasets and training jobs."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from gsnn_edges.job_status import JobStatus


def utcnow() -> datetime:
    """Timezone-aware current UTC time."""
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timestamps stored in UTC and always returned timezone-aware (SQLite drops tz)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    pass


class Graph(Base):
    """A prior-knowledge graph; the content lives in the artifact store."""

    __tablename__ = "graphs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(200), index=True)
    name: Mapped[str | None] = mapped_column(String(500), nullable=True)
    counts: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Dataset(Base):
    """Observations of a graph's input and output nodes (Parquet in the artifact store)."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(200), index=True)
    graph_id: Mapped[str] = mapped_column(ForeignKey("graphs.id"), index=True)
    n_samples: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Job(Base):
    """One training run. ``status`` only moves forward (see ``repository``).

    A job with ``spec.replicas > 1`` has one child job per replica (``parent_id``,
    ``replica``): the children train, each on a worker of its own, and the job itself
    runs once they have all succeeded, combining their results. A job whose
    confirmation fans out (``GSNN_EDGES_CONFIRM_CHUNKS`` > 1) stages its unconfirmed
    results, then has one child job per chunk of candidates (``confirm_chunk``) and runs
    again, to merge them, once they have succeeded. Children are internal: the API lists
    and serves only top-level jobs, with their replica children as ``replicas``.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("tenant", "idempotency_key", name="uq_jobs_tenant_idempotency_key"),
        Index("ix_jobs_status_heartbeat", "status", "heartbeat_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(200), index=True)
    graph_id: Mapped[str] = mapped_column(ForeignKey("graphs.id"))
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.queued.value)
    spec: Mapped[dict] = mapped_column(JSON)
    progress: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    error: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    device: Mapped[str | None] = mapped_column(String(32), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claim_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # the job's queue messages: how many were sent and when the last one was (a claim
    # deduplicates extra ones; the reaper re-sends lost ones with backoff)
    sends: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # the claim token of the attempt whose result files are published (set in the same
    # conditional update that makes the job succeeded: a fenced-out worker cannot)
    result_attempt: Mapped[str | None] = mapped_column(String(64), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", name="fk_jobs_parent_id"), nullable=True, index=True
    )
    replica: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # a chunk of a job's confirmation (service.children): fits some of the candidates'
    # variants on the refined checkpoint the job's training attempt staged
    confirm_chunk: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # the claim token of the training attempt whose unconfirmed results, checkpoint and
    # candidates the confirmation chunks read and the job's next run completes
    staged_attempt: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # a job's replica jobs, replica 0 first: filled by the repository's job reads, with a
    # query for jobs with replicas only (a status poll of a job without replicas costs
    # no second query); never loaded on access, so a read that forgets it fails loudly
    children: Mapped[list[Job]] = relationship(lazy="raise", order_by="Job.replica")


class JobEpoch(Base):
    """One finished epoch of a job's current attempt (its progress record), written with
    the progress update so the curves can be drawn while the job trains."""

    __tablename__ = "job_epochs"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    record: Mapped[dict] = mapped_column(JSON)
