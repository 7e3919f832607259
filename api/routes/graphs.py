"""``/v1/graphs``: create, fetch and list prior-knowledge graphs."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status

from api.deps import Ctx, PagingDep, Tenant
from api.errors import problem_responses
from api.schemas.graphs import GraphContent, GraphCreate, GraphList, GraphOut
from gsnn_edges.service import graphs as svc

router = APIRouter(prefix="/v1/graphs", tags=["graphs"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=GraphOut,
    responses=problem_responses(400, 401, 413, 422),
    summary="Create a graph",
)
def create_graph(body: GraphCreate, ctx: Ctx, tenant: Tenant, response: Response) -> GraphOut:
    """Validate and store a graph (unknown endpoints, bad edge types and duplicate
    names are 422)."""
    content = {"nodes": body.nodes.model_dump(), "edges": [list(e) for e in body.edges]}
    row = svc.create_graph(ctx, tenant, body.name, content)
    response.headers["Location"] = f"/v1/graphs/{row.id}"
    return GraphOut.model_validate(row)


@router.get(
    "/{graph_id}",
    response_model=GraphOut,
    responses=problem_responses(401, 404, 422),
    summary="Get a graph",
)
def get_graph(
    graph_id: str,
    ctx: Ctx,
    tenant: Tenant,
    include: Annotated[
        Literal["content"] | None, Query(description="'content' adds nodes and edges.")
    ] = None,
) -> GraphOut:
    row = svc.get_graph(ctx, tenant, graph_id)
    out = GraphOut.model_validate(row)
    if include == "content":
        out.content = GraphContent(**svc.graph_content(ctx, row.id))
    return out


@router.get(
    "", response_model=GraphList, responses=problem_responses(401, 422), summary="List graphs"
)
def list_graphs(ctx: Ctx, tenant: Tenant, paging: PagingDep) -> GraphList:
    rows, total = svc.list_graphs(ctx, tenant, paging.limit, paging.offset)
    return GraphList.of([GraphOut.model_validate(r) for r in rows], total, paging)
