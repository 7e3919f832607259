"""Job service (API side): submit with idempotency, fetch, list and cancel jobs."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from gsnn_edges.job_status import JobStatus
from gsnn_edges.service import repository as repo
from gsnn_edges.service.context import ServiceContext, new_id
from gsnn_edges.service.errors import (
    ConflictError,
    IdempotencyMismatchError,
    InvalidInputError,
    ServiceUnavailableError,
    TooManyRequestsError,
    require_found,
)
from gsnn_edges.service.graphs import graph_content
from gsnn_edges.service.models import Job

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submitted:
    """A submitted job and whether it was an idempotent replay of an earlier request."""

    job: Job
    replayed: bool


def request_hash(graph_id: str, dataset_id: str, spec: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a (defaults-applied) job request."""
    body = {"graph_id": graph_id, "dataset_id": dataset_id, "spec": spec}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _replay(job: Job, digest: str) -> Submitted:
    if job.request_hash != digest:
        raise IdempotencyMismatchError(
            "this Idempotency-Key was already used with a different request body "
            f"(job {job.id!r}); use a new key for a new job",
            [{"loc": ["header", "Idempotency-Key"], "msg": "reused with a different body"}],
        )
    return Submitted(job=job, replayed=True)


def validate_job(
    ctx: ServiceContext, tenant: str, graph_id: str, dataset_id: str, spec: dict[str, Any]
) -> None:
    """Check that graph and dataset exist, belong together and accept ``spec``."""
    from gsnn_edges.graph import GraphValidationError, GSNNGraph
    from gsnn_edges.spec import TrainSpec
    from gsnn_edges.train_validation import SpecValidationError, estimate_job_bytes, validate_spec

    with ctx.db.session() as session:
        graph = repo.get_graph(session, tenant, graph_id)
        dataset = repo.get_dataset(session, tenant, dataset_id)
    if graph is None:
        raise InvalidInputError.at(["body", "graph_id"], f"graph {graph_id!r} not found")
    if dataset is None:
        raise InvalidInputError.at(["body", "dataset_id"], f"dataset {dataset_id!r} not found")
    if dataset.graph_id != graph_id:
        raise InvalidInputError.at(
            ["body", "dataset_id"],
            f"dataset {dataset_id!r} belongs to graph {dataset.graph_id!r}, not {graph_id!r}",
        )
    try:
        graph = GSNNGraph.from_json(graph_content(ctx, graph_id))
        train_spec = TrainSpec.from_dict(spec)
        validate_spec(graph, train_spec)
    except (SpecValidationError, GraphValidationError) as exc:
        raise InvalidInputError.at(["body", *getattr(exc, "loc", ())], str(exc)) from exc
    need = estimate_job_bytes(graph, train_spec, dataset.n_samples)
    budget = int(ctx.settings.worker_memory_mb * 2**20)
    if need > budget:
        raise InvalidInputError.at(
            ["body"],
            f"this job needs about {need / 2**30:.1f} GiB ({graph.n_function} function nodes: "
            f"W, its optimizer and the score matrices grow with their square; "
            f"channels x layers and batch size set the rest), over the worker budget of "
            f"{budget / 2**30:.1f} GiB (setting GSNN_EDGES_WORKER_MEMORY_MB)",
        )


def _check_quota(ctx: ServiceContext, tenant: str) -> None:
    """At most ``max_active_jobs`` queued + running jobs per tenant, so one tenant's
    backlog stays bounded (the workers' fair pick, :func:`repository.next_fair_job`, keeps
    it from delaying other tenants' jobs). Concurrent submits may each pass the count:
    the overshoot is bounded by the number of simultaneous requests."""
    limit = ctx.settings.max_active_jobs
    with ctx.db.session() as session:
        active = repo.count_active_jobs(session, tenant)
    if active >= limit:
        raise TooManyRequestsError(
            f"this tenant has {active} queued or running jobs, the limit "
            f"(GSNN_EDGES_MAX_ACTIVE_JOBS) is {limit}: wait for some to finish or cancel "
            "some, then submit again",
            retry_after=int(ctx.settings.stale_after_s),
        )


def submit_job(
    ctx: ServiceContext,
    tenant: str,
    graph_id: str,
    dataset_id: str,
    spec: dict[str, Any],
    idempotency_key: str | None = None,
) -> Submitted:
    """Validate, record and enqueue a training job.

    The same ``idempotency_key`` with the same request returns the first job; with a
    different request it raises :class:`IdempotencyMismatchError`.

    Raises:
        TooManyRequestsError: the tenant already has ``max_active_jobs`` queued or
            running jobs (a replay is still answered: it creates nothing).
    """
    digest = request_hash(graph_id, dataset_id, spec)
    if idempotency_key is not None:
        with ctx.db.session() as session:
            existing = repo.find_job_by_idempotency_key(session, tenant, idempotency_key)
        if existing is not None:
            return _replay(existing, digest)
    _check_quota(ctx, tenant)
    validate_job(ctx, tenant, graph_id, dataset_id, spec)
    job = new_job(tenant, graph_id, dataset_id, spec)
    job.idempotency_key, job.request_hash = idempotency_key, digest
    # a job of several replicas runs as one job per replica plus itself, the join
    # (service.children): the replicas go to the queue now, the job once they succeed
    replicas = [
        new_job(tenant, graph_id, dataset_id, spec, parent_id=job.id, replica=r)
        for r in range(int(spec.get("replicas") or 1))
    ]
    replicas = replicas if len(replicas) > 1 else []
    with ctx.db.session() as session:
        try:
            job = repo.add_job(session, job, replicas)
        except repo.DuplicateIdempotencyKey:
            existing = repo.find_job_by_idempotency_key(session, tenant, idempotency_key or "")
            return _replay(existing, digest)
    _enqueue(ctx, job.id, [r.id for r in replicas] or [job.id])
    return Submitted(job=get_job(ctx, tenant, job.id), replayed=False)


def new_job(
    tenant: str,
    graph_id: str,
    dataset_id: str,
    spec: dict[str, Any],
    parent_id: str | None = None,
    replica: int | None = None,
    confirm_chunk: int | None = None,
) -> Job:
    """A queued job (or a child job of ``parent_id``: a replica or a confirmation
    chunk), not yet added to the database."""
    return Job(
        id=new_id("job"),
        tenant=tenant,
        graph_id=graph_id,
        dataset_id=dataset_id,
        status=JobStatus.queued,
        spec=spec,
        attempts=0,
        cancel_requested=False,
        parent_id=parent_id,
        replica=replica,
        confirm_chunk=confirm_chunk,
    )


def _enqueue(ctx: ServiceContext, job_id: str, messages: list[str]) -> None:
    """Send ``messages`` (job ids) for job ``job_id``: its own id, or its replicas'."""
    try:
        ctx.enqueue_many(messages)
    except Exception as exc:  # any broker failure
        log.exception("could not enqueue job %s", job_id)
        error = {"type": "BrokerUnavailable", "message": f"could not queue the job: {exc}"}
        with ctx.db.session() as session:
            for failed in {job_id, *messages}:
                repo.fail_queued(session, failed, error)
        raise ServiceUnavailableError(f"the job queue is unavailable: {exc}") from exc
    with ctx.db.session() as session:  # after the send: a lost record only means a resend
        for sent in messages:
            repo.mark_sent(session, sent)


def get_job(ctx: ServiceContext, tenant: str, job_id: str) -> Job:
    with ctx.db.session() as session:
        return require_found(repo.get_job(session, tenant, job_id), f"job {job_id!r}")


def list_jobs(
    ctx: ServiceContext, tenant: str, limit: int, offset: int, status: str | None = None
) -> tuple[list, int]:
    with ctx.db.session() as session:
        return repo.list_jobs(session, tenant, limit, offset, status)


def cancel_job(ctx: ServiceContext, tenant: str, job_id: str) -> Job:
    """Cancel a queued job now, or ask a running one to stop at its next epoch boundary.

    Raises:
        ConflictError: the job already succeeded or failed.
    """
    job = get_job(ctx, tenant, job_id)
    if job.status in (JobStatus.succeeded, JobStatus.failed):
        raise ConflictError(f"job {job_id!r} already {job.status}; it cannot be cancelled")
    with ctx.db.session() as session:
        repo.request_cancel(session, job_id)
        # its replicas stop at their next epoch boundary, its confirmation chunks
        # before they fit
        for child in [*job.children, *repo.chunk_jobs(session, job_id)]:
            repo.request_cancel(session, child.id)
    return get_job(ctx, tenant, job_id)


def epoch_history(
    ctx: ServiceContext,
    tenant: str,
    job_id: str,
    replica: int | None = None,
    since: int = 0,
    limit: int = 1000,
) -> tuple[int | None, list[dict]]:
    """``(replica, records)``: the finished epochs of a job's current attempt after epoch
    ``since`` (at most ``limit``), while it runs and after; for a job with replicas,
    those of replica ``replica`` (default 0; None for a job without replicas).

    Raises:
        NotFoundError: no such job of the tenant.
        InvalidInputError: ``replica`` names no replica of the job.
    """
    job = get_job(ctx, tenant, job_id)
    source, chosen = job.id, None
    if job.children:
        chosen = replica or 0
        match = [c.id for c in job.children if c.replica == chosen]
        if not match:
            raise InvalidInputError.at(
                ["query", "replica"],
                f"job {job_id!r} has replicas 0 to {len(job.children) - 1}, not {chosen}",
            )
        source = match[0]
    elif replica not in (None, 0):
        raise InvalidInputError.at(["query", "replica"], f"job {job_id!r} has no replicas")
    with ctx.db.session() as session:
        return chosen, repo.epoch_history(session, source, since, limit)
