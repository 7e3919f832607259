"""Child jobs: the replicas of a job and the chunks of its confirmation, and the join
that runs the job once they have all succeeded.

A job's replicas (``spec.replicas > 1``) are jobs of their own (:class:`~gsnn_edges.
service.models.Job`, ``parent_id``, ``replica``), sent to the queue together (a Celery
group) so that free workers train them at once; the job combines their stored results
(:func:`gsnn_edges.train.assemble`).

A job's confirmation (``confirm.top``) fans out the same way when
``GSNN_EDGES_CONFIRM_CHUNKS`` > 1: the run that trained (or combined) stages its
unconfirmed results, checkpoint, candidates and the refined copy of the checkpoint they
are fitted on (``confirm.refine_epochs``, refined once here) under its attempt, then
hands the ``M + 1`` fits of :mod:`gsnn_edges.inference.confirm` to that many chunk jobs
(``confirm_chunk``; :func:`chunk_variants` splits them) and lets go of the job; each
chunk's worker loads the refined copy from the artifact store, fits its variants and
stores their held-out losses;
the job's next run judges them together (:func:`gsnn_edges.inference.confirm.judge`:
the same p-values as one process would give) and publishes the confirmed table.

Either way the job is the join: it is unclaimable until every child has succeeded, and
the worker that finishes the last child runs it right away, warm (no queue round trip,
no new process); if that worker dies first, the reaper sends the job a message as it
does for any job whose message is overdue. The join lives in the database rather than
in a Celery chord: it needs no result backend, survives a restart of every process, and
sits in the same conditional updates as claims and fencing.
"""

from __future__ import annotations

import logging

import numpy as np

from gsnn_edges.job_status import JobStatus
from gsnn_edges.service import repository as repo
from gsnn_edges.service.context import ServiceContext
from gsnn_edges.service.models import Job

log = logging.getLogger(__name__)


def chunk_variants(n_candidates: int, chunks: int, chunk: int) -> range:
    """The confirmation variants (``0..n_candidates``) chunk ``chunk`` of ``chunks`` fits:
    contiguous, sizes differing by at most one."""
    bounds = np.linspace(0, n_candidates + 1, chunks + 1).round().astype(int)
    return range(int(bounds[chunk]), int(bounds[chunk + 1]))


def _child_kind(child: Job) -> str:
    return "replica" if child.replica is not None else "confirmation chunk"


def _child_name(child: Job) -> str:
    index = child.replica if child.replica is not None else child.confirm_chunk
    return f"{_child_kind(child)} {index}"


def settle_child(ctx: ServiceContext, job_id: str) -> str | None:
    """After child job ``job_id`` (a replica or a confirmation chunk) reached a terminal
    status: a failed child fails its job (with the child's reason) and cancels the other
    children. Returns the id of the job when this was its last child to succeed (the
    caller runs it; should two callers both see it ready, one claim wins), else None.
    Safe to call twice."""
    with ctx.db.session() as session:
        child = repo.load_job(session, job_id)
        if child is None or child.parent_id is None:
            return None
        parent_id, status, error = child.parent_id, child.status, child.error or {}
        kind, name, is_chunk = _child_kind(child), _child_name(child), child.replica is None
        # (reading the siblings expires the session's objects, child included)
        siblings = (repo.chunk_jobs if is_chunk else repo.replica_jobs)(session, parent_id)
        if status == JobStatus.failed:
            failed = repo.fail_parent(
                session,
                parent_id,
                {
                    "type": error.get("type", "ChildFailed"),
                    "message": f"{name} failed: {error.get('message', '')}",
                },
            )
            for sibling in siblings if failed else []:
                if sibling.id != job_id:
                    repo.request_cancel(session, sibling.id)
            return None
        if status != JobStatus.succeeded:
            return None
        done = sum(s.status == status for s in siblings)
        if is_chunk:
            repo.chunk_settled(session, parent_id, done)
    if done < len(siblings):
        return None
    log.info("job %s: every %s succeeded, running the job", parent_id, kind)
    return parent_id
