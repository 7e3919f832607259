"""All persistence of the service. Only this module commits sessions.

Job status transitions are conditional ``UPDATE`` statements so that status only moves
forward (queued -> running -> succeeded | failed | cancelled, queued -> cancelled) and
concurrent workers, reapers and API calls cannot overwrite each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar

from sqlalchemy import Select, delete, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased
from sqlalchemy.orm.attributes import set_committed_value

from gsnn_edges.job_status import JobStatus
from gsnn_edges.service.models import Dataset, Graph, Job, JobEpoch, utcnow

# a tenant-owned row type
Owned = TypeVar("Owned", Graph, Dataset, Job)
# a _list_owned filter value: the column is NULL (jobs: not a replica of another job)
_TOP_LEVEL = object()


def db_now(session: Session) -> datetime:
    """The database's current time (UTC). Every process stamps and compares job times
    (heartbeats, claims, messages, the reaper's cutoff) with this one clock, so a worker
    or API host whose own clock is off cannot make a live job look stale. SQLite is a
    file on this host, so its clock is this process's."""
    if session.get_bind().dialect.name == "postgresql":
        return session.scalar(select(func.clock_timestamp())).astimezone(timezone.utc)
    return utcnow()


class DuplicateIdempotencyKey(Exception):
    """Insert raced with another request that used the same Idempotency-Key."""


def _page(session: Session, stmt: Select, limit: int, offset: int) -> tuple[list, int]:
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    items = list(session.scalars(stmt.limit(limit).offset(offset)))
    return items, int(total)


def _get_owned(session: Session, model: type[Owned], tenant: str, row_id: str) -> Owned | None:
    """The row of ``model`` with ``row_id`` if ``tenant`` owns it, else None."""
    return session.scalar(select(model).where(model.id == row_id, model.tenant == tenant))


def _list_owned(
    session: Session, model: type[Owned], tenant: str, limit: int, offset: int, **filters: Any
) -> tuple[list[Owned], int]:
    """A page of ``tenant``'s rows of ``model``, oldest first; None-valued filters are ignored."""
    stmt = select(model).where(model.tenant == tenant)
    for column, value in filters.items():
        if value is _TOP_LEVEL:
            stmt = stmt.where(getattr(model, column).is_(None))
        elif value is not None:
            stmt = stmt.where(getattr(model, column) == value)
    return _page(session, stmt.order_by(model.created_at, model.id), limit, offset)


# --- graphs -------------------------------------------------------------------------


def add_graph(session: Session, graph: Graph) -> Graph:
    session.add(graph)
    session.commit()
    return graph


def get_graph(session: Session, tenant: str, graph_id: str) -> Graph | None:
    return _get_owned(session, Graph, tenant, graph_id)


def list_graphs(session: Session, tenant: str, limit: int, offset: int) -> tuple[list, int]:
    return _list_owned(session, Graph, tenant, limit, offset)


# --- datasets -----------------------------------------------------------------------


def add_dataset(session: Session, dataset: Dataset) -> Dataset:
    session.add(dataset)
    session.commit()
    return dataset


def get_dataset(session: Session, tenant: str, dataset_id: str) -> Dataset | None:
    return _get_owned(session, Dataset, tenant, dataset_id)


def list_datasets(
    session: Session, tenant: str, limit: int, offset: int, graph_id: str | None = None
) -> tuple[list, int]:
    return _list_owned(session, Dataset, tenant, limit, offset, graph_id=graph_id)


# --- jobs: API side -----------------------------------------------------------------


def add_job(session: Session, job: Job, replicas: list[Job] | None = None) -> Job:
    """Insert a job and its replica jobs, in one transaction.

    Raises:
        DuplicateIdempotencyKey: another job of the tenant already holds the key.
    """
    job.created_at = db_now(session)  # the one clock: lost-message checks compare it
    session.add(job)
    for child in replicas or []:
        child.created_at = job.created_at
        session.add(child)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        if job.idempotency_key is not None:
            raise DuplicateIdempotencyKey(job.idempotency_key) from exc
        raise
    return job


def get_job(session: Session, tenant: str, job_id: str) -> Job | None:
    """A top-level job of ``tenant`` with its replica jobs (replica jobs are served
    inside theirs)."""
    job = _get_owned(session, Job, tenant, job_id)
    if job is None or job.parent_id is not None:
        return None
    return _with_replicas(session, [job])[0]


def _with_replicas(session: Session, jobs: list[Job]) -> list[Job]:
    """Fill ``children`` of the jobs that have replicas, with one query for all of them
    (none when no job has replicas: the common status poll)."""
    parents = [j.id for j in jobs if int((j.spec or {}).get("replicas") or 1) > 1]
    found: dict[str, list[Job]] = {p: [] for p in parents}
    if parents:
        replicas = Job.parent_id.in_(parents) & Job.replica.is_not(None)  # not its chunks
        stmt = select(Job).where(replicas).order_by(Job.replica)
        for child in session.scalars(stmt):
            found[child.parent_id].append(child)
    for job in jobs:
        set_committed_value(job, "children", found.get(job.id, []))
    return jobs


def load_job(session: Session, job_id: str) -> Job | None:
    """A job by id regardless of tenant (worker side)."""
    session.expire_all()
    return session.get(Job, job_id)


def find_job_by_idempotency_key(session: Session, tenant: str, key: str) -> Job | None:
    job = session.scalar(select(Job).where(Job.tenant == tenant, Job.idempotency_key == key))
    return None if job is None else _with_replicas(session, [job])[0]


def list_jobs(
    session: Session, tenant: str, limit: int, offset: int, status: str | None = None
) -> tuple[list, int]:
    jobs, total = _list_owned(
        session, Job, tenant, limit, offset, status=status, parent_id=_TOP_LEVEL
    )
    return _with_replicas(session, jobs), total


def _update(session: Session, job_id: str, where: list, **values: Any) -> bool:
    result = session.execute(update(Job).where(Job.id == job_id, *where).values(**values))
    session.commit()
    return result.rowcount == 1


def request_cancel(session: Session, job_id: str) -> None:
    """Cancel a queued or unclaimed job now; flag a claimed running job for its worker."""
    now = db_now(session)
    _update(
        session,
        job_id,
        [Job.status == JobStatus.queued],
        status=JobStatus.cancelled,
        finished_at=now,
    )
    _update(
        session,
        job_id,
        [Job.status == JobStatus.running, Job.claim_token.is_(None)],
        status=JobStatus.cancelled,
        finished_at=now,
    )
    _update(session, job_id, [Job.status == JobStatus.running], cancel_requested=True)


def fail_queued(session: Session, job_id: str, error: dict) -> bool:
    """Fail a job that never started (e.g. the broker refused it). Its Idempotency-Key is
    released: the client was told to retry (503), and a retry with the same key must
    create a job that can run, not replay this one forever."""
    return _update(
        session,
        job_id,
        [Job.status == JobStatus.queued],
        status=JobStatus.failed,
        error=error,
        finished_at=db_now(session),
        idempotency_key=None,
    )


def count_active_jobs(session: Session, tenant: str) -> int:
    """The tenant's queued and running jobs (a job with replicas counts once)."""
    active = Job.status.in_([JobStatus.queued, JobStatus.running])
    top = Job.parent_id.is_(None)
    n = session.scalar(select(func.count()).where(Job.tenant == tenant, active, top))
    session.rollback()
    return int(n or 0)


def count_jobs_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(select(Job.status, func.count()).group_by(Job.status))
    return {status: int(n) for status, n in rows}


# --- jobs: worker side --------------------------------------------------------------


def _replicas_done() -> Any:
    """True for a job none of whose replica jobs is short of ``succeeded`` (every job
    without replicas): only then can a worker run it (combine its replicas)."""
    child = aliased(Job)
    waiting = exists().where(child.parent_id == Job.id, child.status != JobStatus.succeeded)
    return ~waiting


def claim_job(session: Session, job_id: str, token: str, device: str | None) -> bool:
    """Atomically take a queued (or released running) job whose replicas, if it has
    any, have all succeeded, clearing an earlier attempt's epoch history; False if not
    claimable."""
    now = db_now(session)
    claimable = (Job.status == JobStatus.queued) | (
        (Job.status == JobStatus.running) & Job.claim_token.is_(None)
    )
    stmt = update(Job).where(
        Job.id == job_id, claimable, Job.cancel_requested.is_(False), _replicas_done()
    )
    result = session.execute(
        stmt.values(
            status=JobStatus.running,
            claim_token=token,
            attempts=Job.attempts + 1,
            heartbeat_at=now,
            started_at=func.coalesce(Job.started_at, now),
            device=device,
        )
    )
    if result.rowcount == 1:  # a new attempt starts a new curve (not a staged job's merge)
        staged = select(Job.staged_attempt).where(Job.id == job_id).scalar_subquery()
        session.execute(delete(JobEpoch).where(JobEpoch.job_id == job_id, staged.is_(None)))
    session.commit()
    return result.rowcount == 1


def _owned(token: str) -> list:
    return [Job.status == JobStatus.running, Job.claim_token == token]


def heartbeat(session: Session, job_id: str, token: str) -> bool:
    """Refresh the heartbeat; False when the claim was lost."""
    return _update(session, job_id, _owned(token), heartbeat_at=db_now(session))


def save_progress(session: Session, job_id: str, token: str, progress: dict) -> bool:
    """Record the owned job's progress; a training epoch's record (``stage`` training)
    also joins the job's epoch history, in the same transaction. False when the claim
    was lost (and nothing is written)."""
    owned = update(Job).where(Job.id == job_id, *_owned(token))
    result = session.execute(owned.values(progress=progress, heartbeat_at=db_now(session)))
    if result.rowcount == 1 and progress.get("stage") == "training":
        session.merge(JobEpoch(job_id=job_id, epoch=int(progress["epoch"]), record=progress))
    session.commit()
    return result.rowcount == 1


def epoch_history(session: Session, job_id: str, since: int = 0, limit: int = 1000) -> list[dict]:
    """The job's epoch records after epoch ``since``, in order, at most ``limit``."""
    stmt = (
        select(JobEpoch.record)
        .where(JobEpoch.job_id == job_id, JobEpoch.epoch > since)
        .order_by(JobEpoch.epoch)
        .limit(limit)
    )
    records = list(session.scalars(stmt))
    session.rollback()
    return records


@dataclass(frozen=True)
class ControlState:
    """What a running worker must know at an epoch boundary."""

    owned: bool
    cancel_requested: bool


def control_state(session: Session, job_id: str, token: str) -> ControlState:
    row = session.execute(
        select(Job.status, Job.claim_token, Job.cancel_requested).where(Job.id == job_id)
    ).one_or_none()
    session.rollback()  # end the read transaction so the next poll sees fresh data
    if row is None:
        return ControlState(owned=False, cancel_requested=False)
    owned = row.status == JobStatus.running and row.claim_token == token
    return ControlState(owned=owned, cancel_requested=bool(row.cancel_requested))


def finish_job(
    session: Session,
    job_id: str,
    token: str,
    status: str,
    *,
    error: dict | None = None,
    device: str | None = None,
) -> bool:
    """Move an owned running job to a terminal status; False when the claim was lost.

    A succeeded job publishes the result files of this attempt (``token``) in the same
    conditional update, so a fenced-out worker can neither finish nor publish."""
    values: dict[str, Any] = {"status": status, "error": error, "finished_at": db_now(session)}
    if status == JobStatus.succeeded:
        values["result_attempt"] = token
    if device is not None:
        values["device"] = device
    return _update(session, job_id, _owned(token), **values)


# --- jobs: reaper -------------------------------------------------------------------


@dataclass(frozen=True)
class StaleJob:
    id: str
    claim_token: str
    attempts: int
    cancel_requested: bool


def find_stale_jobs(session: Session, cutoff: datetime) -> list[StaleJob]:
    """Claimed running jobs whose heartbeat is older than ``cutoff`` (a released job has
    no claim; :func:`find_unclaimed_jobs` looks after its message)."""
    rows = session.execute(
        select(Job.id, Job.claim_token, Job.attempts, Job.cancel_requested).where(
            Job.status == JobStatus.running, Job.claim_token.is_not(None), Job.heartbeat_at < cutoff
        )
    ).all()
    session.rollback()
    return [StaleJob(r.id, r.claim_token, int(r.attempts), bool(r.cancel_requested)) for r in rows]


def _stale(stale: StaleJob, cutoff: datetime) -> list:
    return [
        Job.status == JobStatus.running,
        Job.claim_token == stale.claim_token,
        Job.heartbeat_at < cutoff,
    ]


def release_stale(
    session: Session, stale: StaleJob, cutoff: datetime, now: datetime | None = None
) -> bool:
    """Drop a lost worker's claim so the job can be claimed again (status stays running),
    counting the message the caller sends next (at ``now``, the reaper pass's clock)."""
    now = now or db_now(session)
    return _update(
        session,
        stale.id,
        _stale(stale, cutoff),
        claim_token=None,
        heartbeat_at=now,
        sends=Job.sends + 1,
        sent_at=now,
    )


def mark_sent(session: Session, job_id: str) -> None:
    """Record that a queue message for the job was sent now."""
    _update(session, job_id, [], sends=Job.sends + 1, sent_at=db_now(session))


@dataclass(frozen=True)
class UnclaimedJob:
    id: str
    sends: int
    last_sent: datetime


def _unclaimed() -> list:
    running_released = (Job.status == JobStatus.running) & Job.claim_token.is_(None)
    return [
        (Job.status == JobStatus.queued) | running_released,
        Job.cancel_requested.is_(False),
        _replicas_done(),
    ]


def next_fair_job(session: Session) -> str | None:
    """The claimable job a free worker should run next: of the tenants with claimable
    jobs, the one with the fewest running jobs, then the least recently served (the
    oldest latest start), and its oldest job. One tenant's backlog thus takes turns with
    the others' instead of running first because it was queued first. None when nothing
    is claimable."""
    running = (
        select(Job.tenant, func.count().label("n"))
        .where(Job.status == JobStatus.running, Job.claim_token.is_not(None))
        .group_by(Job.tenant)
        .subquery()
    )
    served = (
        select(Job.tenant, func.max(Job.started_at).label("last")).group_by(Job.tenant).subquery()
    )
    stmt = (
        select(Job.id)
        .outerjoin(running, running.c.tenant == Job.tenant)
        .outerjoin(served, served.c.tenant == Job.tenant)
        .where(*_unclaimed())
        .order_by(
            func.coalesce(running.c.n, 0),
            served.c.last.is_not(None),  # never served first
            served.c.last,
            Job.created_at,
            Job.id,
        )
        .limit(1)
    )
    job_id = session.scalar(stmt)
    session.rollback()
    return job_id


def find_unclaimed_jobs(session: Session, cutoff: datetime) -> list[UnclaimedJob]:
    """Queued or released jobs whose last message (or creation, if none was sent) is
    older than ``cutoff``: their message may be lost."""
    last = func.coalesce(Job.sent_at, Job.created_at)
    rows = session.execute(
        select(Job.id, Job.sends, last.label("last")).where(*_unclaimed(), last < cutoff)
    ).all()
    session.rollback()
    return [UnclaimedJob(r.id, int(r.sends), r.last) for r in rows]


def take_resend(session: Session, job: UnclaimedJob, now: datetime | None = None) -> bool:
    """Count one more message for a still-unclaimed job, sent at ``now``; False when
    another reaper (or a claim) got there first, so each overdue message is re-sent
    once."""
    return _update(
        session,
        job.id,
        [*_unclaimed(), Job.sends == job.sends],
        sends=Job.sends + 1,
        sent_at=now or db_now(session),
    )


def end_stale(
    session: Session, stale: StaleJob, cutoff: datetime, status: str, error: dict | None
) -> bool:
    """Fail (or cancel) a lost job that must not run again."""
    return _update(
        session,
        stale.id,
        _stale(stale, cutoff),
        status=status,
        error=error,
        finished_at=db_now(session),
        claim_token=None,
    )


# --- jobs: replicas -----------------------------------------------------------------


def replica_jobs(session: Session, parent_id: str) -> list[Job]:
    """The replica jobs of ``parent_id``, replica 0 first."""
    return _child_jobs(session, parent_id, Job.replica)


def chunk_jobs(session: Session, parent_id: str) -> list[Job]:
    """The confirmation chunk jobs of ``parent_id``, chunk 0 first."""
    return _child_jobs(session, parent_id, Job.confirm_chunk)


def _child_jobs(session: Session, parent_id: str, number: Any) -> list[Job]:
    """The children of ``parent_id`` that ``number`` (their replica or chunk column)
    numbers, in its order; read fresh (expires the session's objects)."""
    session.expire_all()
    of = (Job.parent_id == parent_id) & number.is_not(None)
    return list(session.scalars(select(Job).where(of).order_by(number)))


def stage_confirmation(
    session: Session, job_id: str, token: str, progress: dict, chunks: list[Job]
) -> bool:
    """Hand an owned job's confirmation to ``chunks`` (new child jobs), in one
    transaction: the job records this attempt as its staged one and drops its claim
    (status stays running), unclaimable until the chunks have all succeeded; then any
    worker merges them (:func:`claim_job`). False, with nothing written, when the claim
    was lost or a cancellation was requested (a cancelled job must end here: it could
    never be claimed to merge)."""
    now = db_now(session)
    owned = update(Job).where(Job.id == job_id, *_owned(token), Job.cancel_requested.is_(False))
    values = dict(claim_token=None, staged_attempt=token, progress=progress, heartbeat_at=now)
    if session.execute(owned.values(**values)).rowcount != 1:
        session.rollback()
        return False
    for chunk in chunks:  # their message counts as sent now (the reaper re-sends a lost one)
        chunk.sends, chunk.sent_at = 1, now
        session.add(chunk)
    session.commit()
    return True


def chunk_settled(session: Session, parent_id: str, done: int) -> bool:
    """Count ``done`` succeeded chunks in the progress of a job waiting for them."""
    job = session.get(Job, parent_id)
    if job is None or job.claim_token is not None or job.status != JobStatus.running:
        session.rollback()
        return False
    done = max(done, int((job.progress or {}).get("confirm_chunks_done") or 0))
    progress = {**(job.progress or {}), "confirm_chunks_done": done}
    waiting = [Job.status == JobStatus.running, Job.claim_token.is_(None)]
    return _update(session, parent_id, waiting, progress=progress)


def start_parent(session: Session, parent_id: str) -> bool:
    """Mark a job running when its first replica starts (its start time is that
    replica's). It stays unclaimed (no worker holds it) and unclaimable until its
    replicas have all succeeded."""
    child = aliased(Job)
    first_start = select(func.min(child.started_at)).where(child.parent_id == parent_id)
    return _update(
        session,
        parent_id,
        [Job.status == JobStatus.queued],
        status=JobStatus.running,
        started_at=func.coalesce(Job.started_at, first_start.scalar_subquery()),
    )


def fail_parent(session: Session, parent_id: str, error: dict) -> bool:
    """Fail a job whose replica failed (while no worker holds the job itself)."""
    waiting = Job.status.in_([JobStatus.queued, JobStatus.running]) & Job.claim_token.is_(None)
    return _update(
        session,
        parent_id,
        [waiting],
        status=JobStatus.failed,
        error=error,
        finished_at=db_now(session),
    )
