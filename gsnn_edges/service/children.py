"""Jobs with replicas (``spec.replicas > 1``): what follows when a replica job ends.

A job's replicas are jobs of their own (:class:`~gsnn_edges.service.models.Job`,
``parent_id``), sent to the queue together (a Celery group) so that free workers train
them at once. The job itself is the join: it is unclaimable until every replica has
succeeded, and the worker that finishes the last replica runs it right away, warm (no
queue round trip, no new process); if that worker dies first, the reaper sends the job
a message as it does for any job whose message is overdue. Its run combines the
replicas' stored results (:func:`gsnn_edges.train.assemble`). The join lives in the
database rather than in a Celery chord: it needs no result backend, survives a restart of
every process, and sits in the same conditional updates as claims and fencing.
"""

from __future__ import annotations

import logging

from gsnn_edges.job_status import JobStatus
from gsnn_edges.service import repository as repo
from gsnn_edges.service.context import ServiceContext

log = logging.getLogger(__name__)


def settle_replica(ctx: ServiceContext, job_id: str) -> str | None:
    """After replica job ``job_id`` reached a terminal status: a failed replica fails
    its job (with the replica's reason) and cancels the other replicas. Returns the id of
    the job when this was its last replica to succeed (the caller runs it; should two
    callers both see it ready, one claim wins), else None. Safe to call twice."""
    with ctx.db.session() as session:
        child = repo.load_job(session, job_id)
        if child is None or child.parent_id is None:
            return None
        parent_id, status = child.parent_id, child.status
        if status == JobStatus.failed:
            error = child.error or {}
            failed = repo.fail_parent(
                session,
                parent_id,
                {
                    "type": error.get("type", "ReplicaFailed"),
                    "message": f"replica {child.replica} failed: {error.get('message', '')}",
                },
            )
            siblings = [c.id for c in repo.replica_jobs(session, parent_id) if c.id != job_id]
            for sibling in siblings if failed else []:
                repo.request_cancel(session, sibling)
            return None
        if status != JobStatus.succeeded:
            return None
        pending = [c for c in repo.replica_jobs(session, parent_id) if c.status != status]
    if pending:
        return None
    log.info("job %s: every replica succeeded, combining them", parent_id)
    return parent_id
