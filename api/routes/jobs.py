"""``/v1/jobs``: submit (idempotent), fetch, list and cancel training jobs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status

from api.deps import Ctx, PagingDep, Tenant
from api.errors import problem_responses
from api.schemas.jobs import EpochList, JobCreate, JobList, JobOut
from gsnn_edges.job_status import JobStatus
from gsnn_edges.service import jobs as svc

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses={
        200: {
            "description": "Idempotent replay: the job created earlier with this key.",
            "model": JobOut,
        },
        **problem_responses(400, 401, 413, 422, 503),
    },
    summary="Submit a training job",
)
def submit_job(
    body: JobCreate,
    ctx: Ctx,
    tenant: Tenant,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=255,
            description="Same key + same body returns the same job; "
            "same key + different body is 422.",
        ),
    ] = None,
) -> JobOut:
    """Queue a job; 202 with the job. A replayed Idempotency-Key answers 200."""
    result = svc.submit_job(
        ctx, tenant, body.graph_id, body.dataset_id, body.spec().to_dict(), idempotency_key
    )
    response.headers["Location"] = f"/v1/jobs/{result.job.id}"
    if result.replayed:
        response.status_code = status.HTTP_200_OK
        response.headers["Idempotent-Replayed"] = "true"
    return JobOut.model_validate(result.job)


@router.get(
    "/{job_id}",
    response_model=JobOut,
    responses=problem_responses(401, 404),
    summary="Get a job",
)
def get_job(job_id: str, ctx: Ctx, tenant: Tenant) -> JobOut:
    return JobOut.model_validate(svc.get_job(ctx, tenant, job_id))


@router.get(
    "/{job_id}/epochs",
    response_model=EpochList,
    responses=problem_responses(401, 404, 422),
    summary="A job's finished epochs",
)
def job_epochs(
    job_id: str,
    ctx: Ctx,
    tenant: Tenant,
    since: Annotated[int, Query(ge=0, description="Only epochs after this one.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 1000,
    replica: Annotated[
        int | None, Query(ge=0, description="Jobs with replicas: which one (default 0).")
    ] = None,
) -> EpochList:
    """Every finished epoch of the job's current attempt (train and regressor loss,
    validation AUC/MRR, best epoch so far), available while it trains: poll with
    ``since`` set to the last epoch you have for the new ones."""
    chosen, items = svc.epoch_history(ctx, tenant, job_id, replica, since, limit)
    return EpochList(replica=chosen, items=items)


@router.get("", response_model=JobList, responses=problem_responses(401, 422), summary="List jobs")
def list_jobs(
    ctx: Ctx,
    tenant: Tenant,
    paging: PagingDep,
    status_: Annotated[
        JobStatus | None, Query(alias="status", description="Only jobs in this status.")
    ] = None,
) -> JobList:
    rows, total = svc.list_jobs(ctx, tenant, paging.limit, paging.offset, status_)
    return JobList.of([JobOut.model_validate(r) for r in rows], total, paging)


@router.post(
    "/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses=problem_responses(401, 404, 409),
    summary="Cancel a job",
)
def cancel_job(job_id: str, ctx: Ctx, tenant: Tenant, response: Response) -> JobOut:
    """A queued job never starts; a running one stops at its next epoch boundary.
    Cancelling a succeeded or failed job is 409."""
    job = svc.cancel_job(ctx, tenant, job_id)
    # from the stored job, not the path: an unknown id (any text) is a 404, never a header
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return JobOut.model_validate(job)
