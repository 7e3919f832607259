"""Operations: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter(tags=["operations"])
log = logging.getLogger(__name__)


@router.get("/healthz", summary="Process is alive")
async def healthz() -> dict[str, str]:
    # async: answered on the event loop, not queued behind the thread pool's heavy
    # requests (CSV exports, uploads), so liveness stays fast under load
    return {"status": "ok"}


def _check(name: str, fn: Callable[[], object]) -> str:
    """``"ok"``, or ``"error: <exception type>"``: the message (hosts, users, paths) goes
    to the log, never to an unauthenticated caller."""
    try:
        fn()
    except Exception as exc:  # any failure means not ready
        log.warning("readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
        return f"error: {type(exc).__name__}"
    return "ok"


@router.get(
    "/readyz",
    summary="Database, broker and artifact store reachable",
    responses={503: {"description": "A dependency is unreachable; the body says which."}},
)
def readyz(request: Request) -> JSONResponse:
    ctx = request.app.state.ctx
    probes = {
        "database": ctx.db.ping,
        "broker": request.app.state.broker_ping,
        "artifact_store": ctx.store.check_writable,
    }
    checks = {name: _check(name, fn) for name, fn in probes.items()}
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
