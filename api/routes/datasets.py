"""``/v1/datasets``: upload (CSV or Parquet), fetch and list observation tables."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile, status
from starlette.concurrency import run_in_threadpool

from api.deps import Ctx, PagingDep, Tenant
from api.errors import problem_responses
from api.schemas.datasets import DatasetList, DatasetOut
from gsnn_edges.service import datasets as svc

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetOut,
    responses=problem_responses(401, 413, 422),
    summary="Upload a dataset",
)
async def upload_dataset(
    ctx: Ctx,
    tenant: Tenant,
    response: Response,
    graph_id: Annotated[str, Form(description="Graph whose nodes the columns name.")],
    file: Annotated[
        UploadFile,
        File(
            description="CSV (header row) or Parquet; one column per input and output "
            "node, one row per sample, finite numbers only."
        ),
    ],
) -> DatasetOut:
    """Validate the table against the graph and store it; nothing is stored on error."""
    data = await file.read()
    row = await run_in_threadpool(svc.create_dataset, ctx, tenant, graph_id, data, file.filename)
    response.headers["Location"] = f"/v1/datasets/{row.id}"
    return DatasetOut.model_validate(row)


@router.get(
    "/{dataset_id}",
    response_model=DatasetOut,
    responses=problem_responses(401, 404),
    summary="Get a dataset",
)
def get_dataset(dataset_id: str, ctx: Ctx, tenant: Tenant) -> DatasetOut:
    return DatasetOut.model_validate(svc.get_dataset(ctx, tenant, dataset_id))


@router.get(
    "",
    response_model=DatasetList,
    responses=problem_responses(401, 422),
    summary="List datasets",
)
def list_datasets(
    ctx: Ctx,
    tenant: Tenant,
    paging: PagingDep,
    graph_id: Annotated[str | None, Query(description="Only datasets of this graph.")] = None,
) -> DatasetList:
    rows, total = svc.list_datasets(ctx, tenant, paging.limit, paging.offset, graph_id)
    return DatasetList.of([DatasetOut.model_validate(r) for r in rows], total, paging)
