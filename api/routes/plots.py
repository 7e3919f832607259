"""``/v1/jobs/{id}/plots`` and ``/v1/graphs/{id}/plots``: SVG charts of a job (training
curves, score histogram, W heatmap, ROC / precision-recall) and of a graph (a layered
drawing), the data of the dashboard's network view and a graph's degree summary, for the
dashboard and for any client; tenant-scoped like every /v1 route."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from api.deps import Ctx, Tenant
from api.errors import problem_responses
from api.schemas.plots import CurvesIn, DegreesOut, NetworkOut
from api.ui.curves import roc_svg
from api.ui.drawing import graph_svg
from api.ui.heatmap import weights_svg
from api.ui.svg import history_svg, scores_svg
from gsnn_edges.service import plot_data as svc
from gsnn_edges.service import plot_graph

router = APIRouter(prefix="/v1/jobs/{job_id}/plots", tags=["plots"])
graph_router = APIRouter(prefix="/v1/graphs/{graph_id}", tags=["plots"])


class SVGResponse(Response):
    """An SVG image that stays inert when opened directly: a sandboxing CSP, no sniffing."""

    media_type = "image/svg+xml"

    def __init__(self, content: str, status_code: int = 200) -> None:
        headers = {
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-cache",
        }
        super().__init__(content, status_code, headers)


def _responses(description: str, *problems: int) -> dict:
    """OpenAPI ``responses=``: the SVG, and problems as problem+json only (a ``model``
    would document them under the route's SVG media type too)."""
    errors = {
        code: {k: v for k, v in entry.items() if k != "model"}
        for code, entry in problem_responses(*problems).items()
    }
    return {200: {"content": {"image/svg+xml": {}}, "description": description}, **errors}


@router.get(
    "/history.svg",
    response_class=SVGResponse,
    responses=_responses("Loss and validation AUC per epoch.", 401, 404),
    summary="Training curves (SVG)",
)
def history(job_id: str, ctx: Ctx, tenant: Tenant) -> SVGResponse:
    """Train and edge-regressor loss and validation AUC per epoch: every epoch once the job
    has succeeded (its metrics history); before that, the last finished epoch (its
    progress). Any status; poll it with the job."""
    return SVGResponse(history_svg(svc.training_history(ctx, tenant, job_id), job_id))


@router.get(
    "/scores.svg",
    response_class=SVGResponse,
    responses=_responses(
        "Histogram of the edge scores, split by q-value, with the top pairs.", 401, 404, 409, 422
    ),
    summary="Score histogram (SVG)",
)
def scores(
    job_id: str,
    ctx: Ctx,
    tenant: Tenant,
    bins: Annotated[int, Query(ge=5, le=200, description="Number of score bins.")] = 40,
    q_threshold: Annotated[
        float, Query(gt=0, le=1, description="Pairs with q_value below this are coloured.")
    ] = 0.1,
    candidates_only: Annotated[
        bool, Query(description="Only pairs that are not edges of the graph yet.")
    ] = True,
) -> SVGResponse:
    """Pairs per score bin (log scale), the pairs with ``q_value < q_threshold`` in colour
    and the lowest such score marked; computed on the server from the stored edge table
    (409 until the job has succeeded)."""
    hist = svc.score_histogram(ctx, tenant, job_id, bins, q_threshold, candidates_only)
    return SVGResponse(scores_svg(hist, job_id))


@router.get(
    "/weights.svg",
    response_class=SVGResponse,
    responses=_responses(
        "W as a heatmap, rows and columns in topological order (up to "
        f"{svc.MAX_HEATMAP_NODES} function nodes; 422 beyond).",
        401,
        404,
        409,
        422,
    ),
    summary="W heatmap (SVG)",
)
def weights(job_id: str, ctx: Ctx, tenant: Tenant) -> SVGResponse:
    """``W[i][j]`` (row ``i`` = source, column ``j`` = target) in a diverging colour scale,
    nodes ordered level by level in a topological order of the job's graph, the graph's
    own function -> function edges dotted. Jobs with more than
    ``MAX_HEATMAP_NODES`` function nodes get 422 (list their top pairs with
    ``GET .../edges`` instead); 409 until the job has succeeded."""
    return SVGResponse(weights_svg(svc.weights_heatmap(ctx, tenant, job_id), job_id))


@router.get(
    "/roc.svg",
    response_class=SVGResponse,
    responses=_responses("ROC and precision-recall curves of the validation edges.", 401, 404, 409),
    summary="ROC and precision-recall curves (SVG)",
)
def roc(job_id: str, ctx: Ctx, tenant: Tenant) -> SVGResponse:
    """The job's validation edges (``metrics.validation_edges``: given in the spec, or
    hidden by ``validation.holdout_fraction``) ranked by score among the other candidate
    pairs: ROC with its AUC and precision-recall with its average precision. 409 until
    the job has succeeded, and for a job without validation edges."""
    return SVGResponse(roc_svg(svc.validation_curves(ctx, tenant, job_id), job_id))


@router.post(
    "/roc.svg",
    response_class=SVGResponse,
    responses=_responses(
        "ROC and precision-recall curves of the edges in the body.", 401, 404, 409, 422
    ),
    summary="ROC and precision-recall curves of your own held-out edges (SVG)",
)
def roc_of(job_id: str, body: CurvesIn, ctx: Ctx, tenant: Tenant) -> SVGResponse:
    """The curves of ``GET .../roc.svg`` for the caller's own held-out edges (what
    ``POST .../evaluate`` summarises as numbers); nothing is stored. Unknown node names
    are 422; 409 when none of the edges is a candidate pair (all are graph edges)."""
    edges = [list(e) for e in body.positive_edges]
    return SVGResponse(roc_svg(svc.edge_curves(ctx, tenant, job_id, edges), job_id, "held-out"))


@router.get(
    "/network.json",
    response_model=NetworkOut,
    responses=problem_responses(401, 404, 409, 422),
    summary="Neighbourhood of the top candidates (network view data)",
)
def network(
    job_id: str,
    ctx: Ctx,
    tenant: Tenant,
    top: Annotated[int, Query(ge=1, le=100, description="Candidate pairs to draw.")] = 25,
) -> NetworkOut:
    """The ``top`` best candidate pairs, their endpoints and graph neighbours of those
    (at most ``MAX_DRAWN_NODES`` nodes), the graph's edges among them, and a layered
    layout (x by topological level); a bounded answer whatever the graph's size."""
    hood = plot_graph.neighbourhood(ctx, tenant, job_id, top)
    return NetworkOut(
        nodes=hood.nodes,
        graph_edges=hood.graph_edges,
        candidates=hood.candidates,
        layered=hood.layered,
    )


@graph_router.get(
    "/degrees",
    response_model=DegreesOut,
    response_model_by_alias=True,
    responses=problem_responses(401, 404),
    summary="Degree summary of a graph",
)
def degrees(graph_id: str, ctx: Ctx, tenant: Tenant) -> DegreesOut:
    """Per node type: count, isolated nodes and min / median / mean / max of in- and
    out-degree; and the five nodes with most edges."""
    return DegreesOut.model_validate(plot_graph.graph_degrees(ctx, tenant, graph_id))


@graph_router.get(
    "/plots/graph.svg",
    response_class=SVGResponse,
    responses=_responses(
        f"The graph drawn in layers (up to {plot_graph.MAX_DRAWN_NODES} nodes; 422 beyond).",
        401,
        404,
        422,
    ),
    summary="Graph drawing (SVG)",
)
def graph_drawing(graph_id: str, ctx: Ctx, tenant: Tenant) -> SVGResponse:
    """Inputs on the left, function nodes by topological level, outputs on the right,
    every node's name as its tooltip; graphs of more than ``MAX_DRAWN_NODES`` nodes get
    422 (see ``GET /v1/graphs/{id}/degrees``)."""
    return SVGResponse(graph_svg(plot_graph.graph_drawing(ctx, tenant, graph_id), graph_id))
