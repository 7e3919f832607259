"""``/v1/jobs/{id}/plots``: SVG charts of a job (training curves, score histogram), for the
dashboard and for any client; tenant-scoped like every /v1 route."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from api.deps import Ctx, Tenant
from api.errors import problem_responses
from api.ui.svg import history_svg, scores_svg
from gsnn_edges.service import plot_data as svc

router = APIRouter(prefix="/v1/jobs/{job_id}/plots", tags=["plots"])


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
