"""Routes of the dashboard: three pages, their script and style sheet, and whether the
server wants an API key. Pages hold no data (the scripts fetch /v1 with the key the user
signed in with), so they are public; a strict Content-Security-Policy allows scripts and
styles from this origin only, never inline."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse

from api.deps import get_ctx

STATIC = Path(__file__).parent / "static"
# the files /ui/static/ serves and their types; nothing else under STATIC is reachable
ASSETS = {
    "api.js": "text/javascript",
    "dashboard.js": "text/javascript",
    "style.css": "text/css",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(prefix="/ui", include_in_schema=False)


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC / f"{name}.html", media_type="text/html", headers=HEADERS)


@router.get("")
def jobs_page() -> FileResponse:
    return _page("jobs")


@router.get("/signin")
def signin_page() -> FileResponse:
    return _page("signin")


@router.get("/jobs/{job_id}")
def job_page(job_id: str) -> FileResponse:
    """The job page; its script reads the id from the path and fetches the job."""
    return _page("job")


@router.get("/config")
def config(request: Request) -> dict[str, bool]:
    """``auth``: whether the API wants a key (false: embedded mode, no sign-in)."""
    return {"auth": get_ctx(request).settings.auth_enabled}


@router.get("/static/{name}")
def asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise HTTPException(404, "no such dashboard file")
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers=HEADERS)
