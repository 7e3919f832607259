"""Results of a succeeded job: edges, weights, metrics, evaluation (409 before success)."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse

from api.deps import Ctx, PagingDep, Tenant
from api.errors import problem_responses
from api.schemas.results import EdgePage, EvaluateIn, MetricsOut, WeightsOut
from gsnn_edges.service import results as svc
from gsnn_edges.service.jsonsafe import to_jsonable

router = APIRouter(prefix="/v1/jobs/{job_id}", tags=["results"])
_ERRORS = problem_responses(401, 404, 409, 422)


@router.get(
    "/edges",
    response_model=EdgePage,
    summary="Scored function -> function edges",
    responses={
        200: {"content": {"text/csv": {}}, "description": "JSON page or CSV (all rows)."},
        **_ERRORS,
    },
)
def get_edges(
    job_id: str,
    ctx: Ctx,
    tenant: Tenant,
    paging: PagingDep,
    src: Annotated[str | None, Query(description="Only pairs from this node.")] = None,
    dst: Annotated[str | None, Query(description="Only pairs into this node.")] = None,
    # NaN or infinite bounds are 422: a NaN bound would match nothing, silently
    min_score: Annotated[
        float | None, Query(allow_inf_nan=False, description="Only score >= this.")
    ] = None,
    max_q_value: Annotated[
        float | None, Query(allow_inf_nan=False, description="Only q_value <= this.")
    ] = None,
    max_confirm_q_value: Annotated[
        float | None,
        Query(
            allow_inf_nan=False,
            description="Only confirmed pairs with confirm_q_value <= this.",
        ),
    ] = None,
    candidates_only: Annotated[
        bool, Query(description="Drop pairs that are already edges of the graph.")
    ] = True,
    format: Annotated[
        Literal["json", "csv"], Query(description="json (paged) or csv (streamed, all rows).")
    ] = "json",
) -> Response:
    """Pairs sorted by score descending."""
    query = svc.EdgeQuery(src, dst, min_score, max_q_value, max_confirm_q_value, candidates_only)
    if format == "csv":
        chunks = svc.edges_csv(ctx, tenant, job_id, query)
        headers = {"Content-Disposition": f'attachment; filename="{job_id}-edges.csv"'}
        return StreamingResponse(chunks, media_type="text/csv", headers=headers)
    total, items = svc.edge_page(ctx, tenant, job_id, query, paging.offset, paging.limit)
    # Through the response model: pydantic writes floats in shortest round-trip form (a
    # served q-value sent back as max_q_value selects its own row; pandas' to_json stops at
    # 15 digits) and NaN as null.
    body = EdgePage(total=total, limit=paging.limit, offset=paging.offset, items=items)
    return Response(content=body.model_dump_json(), media_type="application/json")


@router.get(
    "/weights",
    response_model=WeightsOut,
    summary="The learned W matrix",
    responses={
        200: {
            "content": {"application/x-npy": {}},
            "description": "JSON, or the raw float32 .npy with format=npy.",
        },
        **_ERRORS,
    },
)
def get_weights(
    job_id: str,
    ctx: Ctx,
    tenant: Tenant,
    format: Annotated[Literal["json", "npy"], Query(description="json or npy.")] = "json",
) -> WeightsOut | Response:
    """``W[i][j]`` scores ``nodes[i] -> nodes[j]``."""
    if format == "npy":
        data = svc.weights_npy_bytes(ctx, tenant, job_id)
        headers = {"Content-Disposition": f'attachment; filename="{job_id}-W.npy"'}
        return Response(data, media_type="application/x-npy", headers=headers)
    nodes, weights = svc.load_weights(ctx, tenant, job_id)
    # tolist() is one C call; only a W holding NaN/inf needs the per-element null mapping
    rows = weights.tolist() if np.isfinite(weights).all() else to_jsonable(weights)
    return WeightsOut(nodes=nodes, weights=rows)


@router.get("/metrics", response_model=MetricsOut, responses=_ERRORS, summary="Job metrics")
def get_metrics(job_id: str, ctx: Ctx, tenant: Tenant) -> MetricsOut:
    return MetricsOut(**svc.load_metrics(ctx, tenant, job_id))


@router.post(
    "/evaluate",
    response_model=dict[str, float | int | None],
    responses=_ERRORS,
    summary="Score your own held-out edges",
)
def evaluate(job_id: str, body: EvaluateIn, ctx: Ctx, tenant: Tenant) -> dict:
    """auc, mrr, top@k (and filtered variants), n_positives; unknown nodes are 422."""
    edges = [list(e) for e in body.positive_edges]
    return to_jsonable(svc.evaluate(ctx, tenant, job_id, edges, body.top_k))
